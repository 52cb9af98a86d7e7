"""Fixtures of the module tests, which run real Terraform against the fake backend (the test module's `fake`)."""

from tests.provider.terraform_helpers import installation, terraform

__all__ = ["installation", "terraform"]
