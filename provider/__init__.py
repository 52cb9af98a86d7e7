"""rtserve's Terraform provider, written in Python on the `tf` framework (plugin protocol 6).

Terraform finds it through a filesystem mirror that `rtserve provider install` writes (see
provider/install.py); Terraform then starts `python -m rtserve.provider` and talks gRPC to it.
Its name, source and version (the distribution's) are in `rtserve.spec`, which the constructs share.
"""

from rtserve.spec import PROVIDER_ADDRESS as ADDRESS
from rtserve.spec import PROVIDER_HOSTNAME as HOSTNAME
from rtserve.spec import PROVIDER_NAME as NAME
from rtserve.spec import PROVIDER_NAMESPACE as NAMESPACE
from rtserve.spec import PROVIDER_SOURCE as SOURCE
from rtserve.spec import PROVIDER_VERSION as VERSION

__all__ = ["ADDRESS", "HOSTNAME", "NAME", "NAMESPACE", "SOURCE", "VERSION"]
