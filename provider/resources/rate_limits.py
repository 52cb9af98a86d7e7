"""The `rate_limits` blocks of `rtserve_serving_endpoint`: schema, declared defaults, plan-time checks, the
request body and the blocks read back from an endpoint's detail. No I/O.

A limit allows `calls` requests per minute to the whole endpoint (`key = "endpoint"`) or to each token
(`key = "user"` or `"service_principal"`; rtserve's principals are its tokens), and a per-token limit may
name one token (`principal`). Wire form (PUT .../ai-gateway, GET .../<name> under `ai_gateway`):
`{"calls", "key", "renewal_period"}`, plus `"principal"` when set; no `ai_gateway` means no limits.

The blocks form a set: the backend keeps them in the order sent, but their order means nothing, so
reordering them plans no change. The backend's defaults (key `endpoint`, renewal_period `minute`) are
filled in at plan time, so a configuration that leaves them out never differs from what is read back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tf.schema import Attribute, Block
from tf.types import Number, String, Unknown
from tf.utils import Diagnostics

from rtserve import spec
from rtserve.provider.blocks import SetNestedBlock
from rtserve.spec import CALLER_KEYS, DEFAULT_RATE_LIMIT_KEY, DEFAULT_RENEWAL_PERIOD, ENDPOINT_KEY, SpecError

DEFAULTS = {"key": DEFAULT_RATE_LIMIT_KEY, "renewal_period": DEFAULT_RENEWAL_PERIOD}
PATH = ["rate_limits"]

RATE_LIMITS = SetNestedBlock(
    "rate_limits",
    Block(
        description="One limit on scoring requests. Changing, adding or removing limits is an in-place update "
        "(no config update, nothing waits); their order does not matter.",
        attributes=[
            Attribute(
                "calls",
                Number(),
                description="Requests allowed per `renewal_period`: a whole number, 0 or more (0 refuses every "
                "request). A burst of `calls` passes, then requests pass at the steady rate.",
                required=True,
            ),
            Attribute(
                "key",
                String(),
                description="Who shares the limit: `endpoint` (every caller together), `user` or "
                f'`service_principal` (each token on its own). Default: `"{ENDPOINT_KEY}"`, as the backend.',
                optional=True,
                computed=True,
            ),
            Attribute(
                "principal",
                String(),
                description="With key `user` or `service_principal`: the one token (by name) this limit is for, "
                "in place of the per-token limit without a principal.",
                optional=True,
            ),
            Attribute(
                "renewal_period",
                String(),
                description="The period `calls` are counted over: `minute` only. "
                f'Default: `"{DEFAULT_RENEWAL_PERIOD}"`.',
                optional=True,
                computed=True,
            ),
        ],
    ),
)


# -- plan: declared defaults -----------------------------------------------------------------------
def limits_with_defaults(configured: Any) -> Any:
    """The configured blocks with the backend's defaults for an unset key and renewal_period (no blocks: [])."""
    if not isinstance(configured, list):
        return [] if configured is None else configured
    return [_with_defaults(block) if isinstance(block, dict) else block for block in configured]


def _with_defaults(block: Mapping[str, Any]) -> dict[str, Any]:
    return {**block, **{name: value for name, value in DEFAULTS.items() if block.get(name) is None}}


def limits_changed(current: Mapping[str, Any], planned: Mapping[str, Any]) -> bool:
    """Whether the limits differ, in any order (a prior state without the blocks has none)."""
    return not RATE_LIMITS.semantically_equal(current.get("rate_limits") or [], planned.get("rate_limits") or [])


# -- validation ------------------------------------------------------------------------------------
def validate_rate_limits(diags: Diagnostics, blocks: Any) -> None:
    """What the backend would refuse, said at plan time: calls that are not a whole number 0 or more, an
    unknown key or renewal_period, a principal with key endpoint, two limits for the same callers.
    Unknown values are skipped: Terraform validates again once they are known."""
    if not isinstance(blocks, list):
        return
    seen: dict[tuple[str, str | None], str] = {}
    for block in blocks:
        if not isinstance(block, dict):
            continue
        problems = _problems(block)
        for problem in problems:
            diags.add_error("Invalid rate_limits block", problem, PATH)
        callers = None if problems else _callers(block)
        if callers is None:
            continue
        if callers in seen:
            diags.add_error(
                "Two rate limits for the same callers",
                f"rate_limits has {seen[callers]} and {describe(block)}; the endpoint keeps one limit per "
                "callers (the endpoint, each token, or one named token). Keep one block.",
                PATH,
            )
        seen.setdefault(callers, describe(block))


def _problems(block: Mapping[str, Any]) -> list[str]:
    """The backend's rules (rtserve.spec) applied to the values known so far, said in Terraform's terms."""
    calls, key = block.get("calls"), block.get("key")
    period, principal = block.get("renewal_period"), block.get("principal")
    checks: list[tuple[Callable[[object, str], object], object, str]] = []
    if isinstance(calls, int | float):
        # A Terraform number arrives as a float; a whole one is the integer the request will carry.
        whole = int(calls) if isinstance(calls, float) and calls.is_integer() else calls
        checks.append((spec.check_calls, whole, "calls"))
    if isinstance(key, str):
        checks.append((spec.check_rate_limit_key, key, "key"))
    if isinstance(period, str):
        checks.append((spec.check_renewal_period, period, "renewal_period"))
    problems = []
    for check, value, field in checks:
        try:
            check(value, field)
        except SpecError as error:
            problems.append(_said(error))
    if isinstance(principal, str):
        try:
            spec.check_principal(principal, key)  # an unknown key is not the endpoint's
        except SpecError as error:
            problems.append(_said(error))
    return problems


def _said(error: SpecError) -> str:
    """A refused value in Terraform's terms: fields by their attribute name, strings in double quotes."""
    if error.reason == "no_groups":
        return (
            f'key: rtserve has no user groups to limit; use "{ENDPOINT_KEY}" for a limit shared by every caller, '
            f'or "{CALLER_KEYS[0]}" for a limit per token.'
        )
    if error.reason == "needs_token_key":
        keys = " or ".join(f'"{key}"' for key in CALLER_KEYS)
        return (
            f"principal {error.value!r} names a token, so key must be {keys} (a limit with "
            f'key "{ENDPOINT_KEY}" counts every caller together).'
        )
    if error.reason == "no_name":
        return f"principal must be a token's name; got {error.value!r}."
    period = " (the only period counted)" if error.field == "renewal_period" else ""
    return f"{error.field} must be {error.rule}{period}; got {error.value!r}."


def _callers(block: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """Whom a limit counts: the endpoint, or tokens (all, or the one named); None when not known yet."""
    key, principal = block.get("key"), block.get("principal")
    if key is Unknown or principal is Unknown:
        return None
    return spec.rate_limit_callers(key, principal)


def describe(block: Mapping[str, Any]) -> str:
    """A limit in words, as the backend says it: "100 calls per minute for the endpoint"."""
    key, principal = block.get("key") or ENDPOINT_KEY, block.get("principal")
    who = "the endpoint" if key == ENDPOINT_KEY else f"token {principal!r}" if principal else "each token"
    return f"{block.get('calls')} calls per {block.get('renewal_period') or DEFAULT_RENEWAL_PERIOD} for {who}"


# -- the request and the state read back -----------------------------------------------------------
def request_limits(blocks: Any) -> list[dict[str, Any]]:
    """The `rate_limits` of a create's `ai_gateway` or of PUT .../ai-gateway, from planned blocks."""
    limits = []
    for block in blocks or []:
        limit: dict[str, Any] = {
            "calls": int(block["calls"]),
            "key": block.get("key") or ENDPOINT_KEY,
            "renewal_period": block.get("renewal_period") or DEFAULT_RENEWAL_PERIOD,
        }
        if block.get("principal"):
            limit["principal"] = block["principal"]
        limits.append(limit)
    return limits


def limits_from_detail(detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The endpoint's limits as `rate_limits` blocks; none when its detail has no `ai_gateway`."""
    limits = (detail.get("ai_gateway") or {}).get("rate_limits") or []
    return [
        {
            "calls": limit.get("calls"),
            "key": limit.get("key") or ENDPOINT_KEY,
            "principal": limit.get("principal"),
            "renewal_period": limit.get("renewal_period") or DEFAULT_RENEWAL_PERIOD,
        }
        for limit in limits
    ]
