"""rtserve's Terraform provider, written in Python on the `tf` framework (plugin protocol 6).

Terraform finds it through a filesystem mirror that `rtserve provider install` writes (see
provider/install.py); Terraform then starts `python -m provider` and talks gRPC to it.
"""

NAMESPACE = "rtserve"
NAME = "rtserve"
VERSION = "0.1.0"
HOSTNAME = "registry.terraform.io"
SOURCE = f"{NAMESPACE}/{NAME}"
ADDRESS = f"{HOSTNAME}/{NAMESPACE}/{NAME}"
