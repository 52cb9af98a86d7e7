"""rtserve's Terraform provider, written in Python on the `tf` framework (plugin protocol 6).

Terraform finds it through a filesystem mirror that `rtserve provider install` writes (see
provider/install.py); Terraform then starts `python -m rtserve.provider` and talks gRPC to it.
"""

from rtserve import __version__

NAMESPACE = "rtserve"
NAME = "rtserve"
VERSION = __version__  # the provider is versioned with the distribution
HOSTNAME = "registry.terraform.io"
SOURCE = f"{NAMESPACE}/{NAME}"
ADDRESS = f"{HOSTNAME}/{NAMESPACE}/{NAME}"
