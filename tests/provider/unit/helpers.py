"""Helpers of the provider unit tests."""

from __future__ import annotations

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, ReadDataContext, Resource, UpdateContext
from tf.utils import Diagnostics

from tests.fakes.app import HOST, AppServer

__all__ = ["HOST", "Contexts", "FakeClock", "errors", "rejected_read"]


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Contexts:
    """One fresh context per operation, each with its own Diagnostics."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def create(self) -> CreateContext:
        return CreateContext(Diagnostics(), self.type_name)

    def read(self) -> ReadContext:
        return ReadContext(Diagnostics(), self.type_name)

    def update(self) -> UpdateContext:
        return UpdateContext(Diagnostics(), self.type_name)

    def delete(self) -> DeleteContext:
        return DeleteContext(Diagnostics(), self.type_name)

    def import_(self) -> ImportContext:
        return ImportContext(Diagnostics(), self.type_name)

    def data(self) -> ReadDataContext:
        return ReadDataContext(Diagnostics(), self.type_name)


def errors(ctx) -> list:  # type: ignore[no-untyped-def]
    return [d for d in ctx.diagnostics.diagnostics if d.severity == "error"]


def rejected_read(resource: Resource, contexts: Contexts, server: AppServer, state: dict) -> str:
    """Read `state` once the backend rejects the token: the state must come back unchanged (Terraform keeps
    it); the summary of the error, for the test to compare."""
    server.rotate_token()
    c = contexts.read()
    assert resource.read(c, state) == state
    return errors(c)[0].summary
