"""What every rtserve resource does around its own backend calls: Terraform's CRUD entry points, reading
the result of an apply back, and telling the user why a wait for the backend did not end well.

Each entry point takes the configured client (or reports that the provider is not configured) and
turns any exception into a diagnostic, so a resource implements only its `*_with(diags, client, ...)`
steps. When there is no client, or a step raised, the entry point returns what Terraform already
has: nothing for create, delete and import; the current state for read and update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, Resource, State, UpdateContext
from tf.utils import Diagnostics

from rtserve.provider.base import ProviderBound, report_api_error, shielded
from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.waiter import Progress, WaitFailed, WaitTimeout


@dataclass(frozen=True)
class WaitReport:
    """What the user reads when waiting for the backend does not end well."""

    subject: str  # what is followed, as in "Could not follow <subject>" when the backend cannot be asked
    failed: str  # the summary of a failure the backend reports; its message is the detail
    late: str  # the summary of a timeout, before " after <seconds> s"
    late_hint: str  # what to do about a timeout, after the last status seen
    failed_hint: str = ""  # what to do about a failure, after the backend's message


class RtserveResource(ProviderBound, Resource):
    """Base of the rtserve resources; subclasses implement the `*_with` steps they need."""

    # Attributes only the backend knows: null when the resource vanished during an apply (see `observe`).
    OUTPUTS: tuple[str, ...] = ()

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return self._run("create", ctx, self.create_with, planned)

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._run("read", ctx, self.read_with, current, unchanged=current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self._run("update", ctx, self.update_with, current, planned, unchanged=current)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self._run("delete", ctx, self.delete_with, current)

    def import_(self, ctx: ImportContext, id: str) -> State | None:  # noqa: A002 - the framework's name
        return self._run("import", ctx, self.import_with, id)

    def _run(self, op: str, ctx: Any, step: Callable[..., Any], *args: Any, unchanged: State | None = None) -> Any:
        def call() -> Any:
            client = self.client(ctx.diagnostics)
            return unchanged if client is None else step(ctx.diagnostics, client, *args)

        return shielded(ctx.diagnostics, f"Could not {op} rtserve_{self.get_name()}", call, unchanged)

    # -- the steps -------------------------------------------------------------------------------
    def create_with(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State | None:
        raise NotImplementedError

    def read_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> State | None:
        """`current` completed from the backend; None when the resource is gone (Terraform plans a re-create)."""
        raise NotImplementedError

    def update_with(self, diags: Diagnostics, client: RtserveClient, current: State, planned: State) -> State | None:
        raise NotImplementedError

    def delete_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> None:
        raise NotImplementedError

    def import_with(self, diags: Diagnostics, client: RtserveClient, id: str) -> State | None:  # noqa: A002
        raise NotImplementedError

    # -- shared by the steps ---------------------------------------------------------------------
    def observe(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State:
        """The state after a create or update: planned inputs, observed outputs."""
        observed = self.read_with(diags, client, planned)
        if observed is None:
            diags.add_error(*self.vanished(planned))
            return {**planned, **dict.fromkeys(self.OUTPUTS)}
        return observed

    def vanished(self, planned: State) -> tuple[str, str]:
        """The error (summary, detail) when someone else deleted the resource during this apply."""
        raise NotImplementedError

    def wait_for(self, diags: Diagnostics, check: Callable[[], Progress], timeout: float, report: WaitReport) -> bool:
        """Poll `check` until it is done: True; False once the failure or the timeout is in `diags`."""
        try:
            self.waiter.wait(check, timeout)
            return True
        except WaitFailed as failure:
            hint = f"\n\n{report.failed_hint}" if report.failed_hint else ""
            diags.add_error(report.failed, f"{failure.message}{hint}")
        except WaitTimeout as timeout_error:
            diags.add_error(
                f"{report.late} after {timeout_error.timeout:g} s",
                f"Last status: {timeout_error.last}\n{report.late_hint}",
            )
        except ApiError as error:
            report_api_error(diags, f"Could not follow {report.subject}", error)
        return False
