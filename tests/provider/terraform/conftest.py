"""Fixtures of the tests running real Terraform against the real app (each test module's `server`)."""

from tests.provider.terraform_helpers import installation, terraform

__all__ = ["installation", "terraform"]
