"""Fixtures of the tests running real Terraform against the fake backend (each test module's `fake`)."""

from tests.provider.terraform_helpers import installation, terraform

__all__ = ["installation", "terraform"]
