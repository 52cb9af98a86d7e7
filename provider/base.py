"""What every resource and data source shares: access to the configured client, and error reporting.

No exception may leave a provider operation (Terraform would only see a gRPC failure, the traceback
going to a log nobody reads): backend errors become diagnostics carrying the backend's error_code
and message, anything else a diagnostic naming the exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tf.utils import Diagnostics

from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.waiter import Waiter

if TYPE_CHECKING:
    from rtserve.provider.plugin import RtserveProvider

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def report_api_error(diags: Diagnostics, summary: str, error: ApiError, path: list | None = None) -> None:
    """An error diagnostic: `<summary>: <ERROR_CODE>` with the backend's message as the detail."""
    detail = error.message
    if error.status:
        detail += f"\n\n(HTTP {error.status} {error.error_code} from {error.method} {error.path})"
    diags.add_error(f"{summary}: {error.error_code}", detail, path)


def shielded(diags: Diagnostics, summary: str, call: Callable[[], T], fallback: T) -> T:
    """`call()`, or `fallback` once whatever it raised is a diagnostic headed `summary`."""
    try:
        return call()
    except ApiError as error:
        report_api_error(diags, summary, error)
    except Exception as error:  # noqa: BLE001 - the boundary: nothing may escape to gRPC
        diags.add_error(
            f"{summary}: unexpected provider error",
            f"{type(error).__name__}: {error}. This is a bug in the rtserve provider; "
            "run with TF_LOG_PROVIDER=DEBUG TF_LOG_PATH=<file> for the traceback.",
        )
    return fallback


def guarded(summary: str, fallback: Callable[[tuple], Any] = lambda args: None) -> Callable[[F], F]:
    """Turn any exception escaping an operation into a diagnostic; return `fallback(args)` instead."""

    def decorate(operation: F) -> F:
        @functools.wraps(operation)
        def wrapper(self: Any, ctx: Any, *args: Any) -> Any:
            return shielded(ctx.diagnostics, summary, lambda: operation(self, ctx, *args), fallback(args))

        return wrapper  # type: ignore[return-value]

    return decorate


class ProviderBound:
    """Base of resources and data sources: `tf` builds them with the provider instance."""

    def __init__(self, provider: RtserveProvider) -> None:
        self.provider = provider

    def client(self, diags: Diagnostics) -> RtserveClient | None:
        client = self.provider.client
        if client is None:
            diags.add_error(
                "The rtserve provider is not configured",
                'Set `host` in the provider block (provider "rtserve" { host = "http://127.0.0.1:8080" }) '
                "or the RTSERVE_HOST environment variable.",
            )
        return client

    @property
    def waiter(self) -> Waiter:
        return self.provider.waiter
