"""Fixtures of the module tests, which run real Terraform against the real app (the test module's `server`)."""

from tests.provider.terraform_helpers import installation, terraform

__all__ = ["installation", "terraform"]
