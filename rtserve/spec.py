"""The API's enums, defaults and rules: one copy, shared by the backend, the provider and the constructs.

Standard library only: the constructs-only install (no MLflow, FastAPI or `tf`) imports it too.

Each `check_*` function takes a request value and the field it came from, returns the value in its
canonical form, or raises `SpecError`: a `ValueError` whose text is the backend's 400 message, and
whose parts (`field`, `rule`, `value`, `reason`) let the provider and the constructs say the same
rule in their own words (a Terraform diagnostic, a construct's prop). Values the constructs cannot
know before Terraform runs (references) are theirs to skip; the rules here see only plain values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from rtserve import __version__

# -- the Terraform provider's identity -------------------------------------------------------------
PROVIDER_NAMESPACE = "rtserve"
PROVIDER_NAME = "rtserve"
PROVIDER_VERSION = __version__  # the provider is versioned with the distribution
PROVIDER_HOSTNAME = "registry.terraform.io"
PROVIDER_SOURCE = f"{PROVIDER_NAMESPACE}/{PROVIDER_NAME}"
PROVIDER_ADDRESS = f"{PROVIDER_HOSTNAME}/{PROVIDER_SOURCE}"


# -- workload sizes --------------------------------------------------------------------------------
class WorkloadSize(StrEnum):
    """Concurrency of one stage or served entity: Small 4, Medium 8-16, Large 16-64 requests in parallel."""

    SMALL = "Small"
    MEDIUM = "Medium"
    LARGE = "Large"


@dataclass(frozen=True)
class WorkloadRange:
    """A workload size and the range of concurrent requests it serves (the reference's numbers)."""

    key: str
    min_concurrency: int
    max_concurrency: int

    @property
    def concurrency(self) -> str:
        """ "4" or "8-16"."""
        low, high = self.min_concurrency, self.max_concurrency
        return str(low) if low == high else f"{low}-{high}"


WORKLOAD_SIZES: dict[str, WorkloadRange] = {
    size.key: size
    for size in (
        WorkloadRange(WorkloadSize.SMALL.value, 4, 4),
        WorkloadRange(WorkloadSize.MEDIUM.value, 8, 16),
        WorkloadRange(WorkloadSize.LARGE.value, 16, 64),
    )
}
DEFAULT_WORKLOAD_SIZE: str = WorkloadSize.SMALL.value
DEFAULT_SCALE_TO_ZERO = False

# -- registry stages -------------------------------------------------------------------------------
STAGING = "Staging"
PRODUCTION = "Production"
ARCHIVED = "Archived"
NO_STAGE = "None"
SERVING_STAGES = (STAGING, PRODUCTION)  # the stages with a scoring URL and a compute config
ALL_STAGES = (NO_STAGE, STAGING, PRODUCTION, ARCHIVED)


def canonical_stage(name: str) -> str | None:
    """ "production" -> "Production"; None when `name` is not a stage (MLflow matches stages case-insensitively)."""
    for stage in ALL_STAGES:
        if stage.lower() == name.lower():
            return stage
    return None


# -- named serving endpoints -----------------------------------------------------------------------
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,63}$")  # endpoint and served entity names
NAME_RULE = "1 to 63 letters, digits, '-' or '_'"
MAX_SERVED_ENTITIES = 15
# Where a served version runs (docs/environments.md): the server's setting, and a served entity's override.
ENVIRONMENT_POLICIES = ("auto", "local", "isolated")
# The largest provisioned concurrency a served entity may ask for: Large's upper bound.
MAX_PROVISIONED_CONCURRENCY = 64
TRAFFIC_TOTAL = 100
TRAFFIC_PERCENTAGE_RULE = f"a whole number from 0 to {TRAFFIC_TOTAL}"

# -- rate limits -----------------------------------------------------------------------------------
ENDPOINT_KEY = "endpoint"  # one limit shared by every caller
CALLER_KEYS = ("user", "service_principal")  # one limit per token
RATE_LIMIT_KEYS = (ENDPOINT_KEY, *CALLER_KEYS)
NO_GROUPS_KEY = "user_group"  # Databricks' key; rtserve has no user groups
DEFAULT_RATE_LIMIT_KEY = ENDPOINT_KEY
RENEWAL_PERIODS = {"minute": 60.0}  # period -> seconds
DEFAULT_RENEWAL_PERIOD = "minute"
# Far above what one backend can answer in a minute, and small enough for a float bucket to count exactly.
MAX_CALLS = 1_000_000_000
CALLS_RULE = "a whole number of calls, 0 or more"

# -- permissions -----------------------------------------------------------------------------------
PRINCIPAL_KINDS = ("user_name", "group_name", "service_principal_name")
USERS_GROUP = "users"  # every token
ADMINS_GROUP = "admins"  # ADMIN tokens; manages every endpoint, cannot be granted to


class PermissionLevel(StrEnum):
    """What a grant allows on one endpoint; each level includes the ones before it."""

    CAN_VIEW = "CAN_VIEW"  # the endpoint, its status, logs and metrics
    CAN_QUERY = "CAN_QUERY"  # and scoring requests
    CAN_MANAGE = "CAN_MANAGE"  # and updating, deleting it and changing its permissions


PERMISSION_LEVELS = tuple(level.value for level in PermissionLevel)

# -- model versions --------------------------------------------------------------------------------
# MLflow's SQL store keeps versions in a 64-bit integer column; anything larger cannot exist.
MAX_VERSION = 2**63 - 1
VERSION_RULE = "a model version number (1, 2, ...)"


# -- errors and validators -------------------------------------------------------------------------
class SpecError(ValueError):
    """A value the API refuses. `str()` is the backend's message; the parts let other callers reword it.

    `reason` names the rule broken ("invalid" for "`field` must be `rule`"), `value` is what was given.
    """

    def __init__(self, message: str, *, field: str = "", rule: str = "", value: object = None, reason: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.rule, self.value, self.reason = message, field, rule, value, reason

    @classmethod
    def must(cls, field: str, rule: str, value: object, show: Callable[[object], str] | None = None) -> SpecError:
        """ "'field' must be rule; got value." (`show` renders the value; default `shown`)."""
        return cls(f"'{field}' must be {rule}; got {(show or shown)(value)}.", field=field, rule=rule, value=value)


def shown(value: object) -> str:
    """A request value for an error message: short values as they are, long ones and objects by kind."""
    if isinstance(value, str) and len(value) <= 40 or isinstance(value, int) and abs(value) <= MAX_VERSION:
        return repr(value)
    if isinstance(value, str | int):
        return "a value too long to show"
    return {dict: "an object", list: "a list", float: "a fraction", bool: repr(value)}.get(type(value), "no value")


def one_of_rule(allowed: Collection[str]) -> str:
    """How a rule names its choices: "'minute'" for one, "one of Small, Medium, Large" for several."""
    return f"'{next(iter(allowed))}'" if len(allowed) == 1 else f"one of {', '.join(allowed)}"


def check_one_of(value: object, allowed: Collection[str], field: str) -> str:
    """`value` if it is one of the strings `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise SpecError.must(field, one_of_rule(allowed), value)
    return value


def is_version_number(text: str) -> bool:
    """Whether `text` is a version number a registry can hold (decimal, 1 to 2**63 - 1)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and 0 < int(text) <= MAX_VERSION


def check_version_number(value: object, field: str = "version") -> str:
    """A registry version number (a string or an int) as its canonical string ("3")."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value) if 0 < value <= MAX_VERSION else ""
    else:
        text = value.strip() if isinstance(value, str) else ""
    if not is_version_number(text):
        raise SpecError.must(field, VERSION_RULE, value)
    return str(int(text))


def check_workload_size(value: object, field: str = "workload_size") -> str:
    return check_one_of(value, WORKLOAD_SIZES, field)


def check_stage(value: object, field: str = "stage", allowed: Collection[str] = SERVING_STAGES) -> str:
    """A stage among `allowed`, matched case-insensitively as MLflow does, in its canonical spelling."""
    stage = canonical_stage(value) if isinstance(value, str) else None
    return check_one_of(stage or value, allowed, field)


def check_name(value: object, field: str = "name") -> str:
    """An endpoint or served entity name."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise SpecError.must(field, NAME_RULE, value, show=repr)
    return value


def check_traffic_percentage(value: object, field: str = "traffic_percentage") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= TRAFFIC_TOTAL:
        raise SpecError.must(field, TRAFFIC_PERCENTAGE_RULE, value, show=repr)
    return value


PROVISIONED_CONCURRENCY_RULE = f"multiples of 4 with 0 <= min <= max and 4 <= max <= {MAX_PROVISIONED_CONCURRENCY}"


def check_provisioned_concurrency(low: object, high: object, where: str = "") -> tuple[int, int]:
    """Databricks' provisioned concurrency, the alternative to a workload size: (min, max) concurrent requests."""
    prefix = f"{where}." if where else ""
    for field, value in (("min_provisioned_concurrency", low), ("max_provisioned_concurrency", high)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value % 4:
            raise SpecError.must(f"{prefix}{field}", "a multiple of 4, 0 or more", value, show=repr)
    assert isinstance(low, int) and isinstance(high, int)
    if high < 4 or high > MAX_PROVISIONED_CONCURRENCY or low > high:
        subject = f"'{where}' " if where else ""
        raise SpecError(
            f"{subject}provisioned concurrency must be {PROVISIONED_CONCURRENCY_RULE}; got {low}-{high}.",
            field=where,
            rule=PROVISIONED_CONCURRENCY_RULE,
            value=(low, high),
            reason="range",
        )
    return (low, high)


def check_traffic_total(shares: Iterable[float]) -> None:
    """The percentages of a traffic split add up to 100."""
    total = sum(shares)
    if total != TRAFFIC_TOTAL:
        raise SpecError(
            f"Traffic percentages must sum to {TRAFFIC_TOTAL}; they sum to {total}.", value=total, reason="total"
        )


def check_calls(value: object, field: str = "calls") -> int:
    """A rate limit's calls per period: 0 (refuse every request) to MAX_CALLS."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError.must(field, CALLS_RULE, value)
    if value > MAX_CALLS:
        error = SpecError.must(field, f"{CALLS_RULE}, at most {MAX_CALLS:,}", value)
        error.reason = "too_many"
        raise error
    return value


def check_rate_limit_key(value: object, field: str = "key") -> str:
    """Who shares a limit; None or "" is the default key."""
    key = value or DEFAULT_RATE_LIMIT_KEY
    if key == NO_GROUPS_KEY:
        raise SpecError(
            f"'{field}': rtserve has no user groups to limit; use '{ENDPOINT_KEY}' for a limit shared by every "
            f"caller, or '{CALLER_KEYS[0]}' for a limit per token.",
            field=field,
            value=value,
            reason="no_groups",
        )
    return check_one_of(key, RATE_LIMIT_KEYS, field)


def check_renewal_period(value: object, field: str = "renewal_period") -> str:
    return check_one_of(value, RENEWAL_PERIODS, field)


def check_principal(principal: object, key: str | None, field: str = "principal") -> str | None:
    """The one token a per-token limit is for (None: every token); it needs a per-token key."""
    if principal is None:
        return None
    if not isinstance(principal, str) or not principal:
        raise SpecError(
            f"'{field}' must be a token's name; got {principal!r}.", field=field, value=principal, reason="no_name"
        )
    if (key or DEFAULT_RATE_LIMIT_KEY) == ENDPOINT_KEY:
        raise SpecError(
            f"'{field}' names a token, so its key must be {' or '.join(repr(k) for k in CALLER_KEYS)}.",
            field=field,
            value=principal,
            reason="needs_token_key",
        )
    return principal


def rate_limit_callers(key: str | None, principal: str | None) -> tuple[str, str | None]:
    """Whom a limit counts: the endpoint, or tokens (all, or the one named). At most one limit per callers."""
    return (ENDPOINT_KEY, principal) if (key or DEFAULT_RATE_LIMIT_KEY) == ENDPOINT_KEY else ("tokens", principal)


def check_permission_level(value: object, field: str = "permission_level") -> str:
    return check_one_of(value, PERMISSION_LEVELS, field)


# A serving endpoint's email_notifications: its two lists, and how many addresses each may hold (Databricks
# documents no limit; this bounds what one change can make the backend send per update).
EMAIL_NOTIFICATION_LISTS = ("on_update_failure", "on_update_success")
MAX_NOTIFIED_ADDRESSES = 50
EMAIL_ADDRESS_RULE = "a plain e-mail address, like name@example.com"


def is_email_address(value: object) -> bool:
    """Whether `value` is one plain address (`local@domain.tld`): no display name, no second address, no line break."""
    from email.headerregistry import Address

    if not isinstance(value, str) or not value or value != value.strip():
        return False
    try:
        parsed = Address(addr_spec=value)
    except Exception:  # noqa: BLE001 - the email package raises several kinds for a malformed address
        return False
    return bool(parsed.username) and "." in parsed.domain and parsed.addr_spec == value


def check_email_addresses(value: object, field: str) -> tuple[str, ...]:
    """A list of e-mail addresses (None: none), each once, in the given order."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise SpecError.must(field, "a list of e-mail addresses", value)
    if len(value) > MAX_NOTIFIED_ADDRESSES:
        raise SpecError(
            f"'{field}' lists {len(value)} addresses; at most {MAX_NOTIFIED_ADDRESSES} are accepted.",
            field=field,
            value=value,
            reason="too_many",
        )
    for address in value:
        if not is_email_address(address):
            raise SpecError(
                f"'{field}': {address!r} is not {EMAIL_ADDRESS_RULE}.",
                field=field,
                rule=EMAIL_ADDRESS_RULE,
                value=address,
            )
    return tuple(dict.fromkeys(value))


# Inference tables: catalog, schema and table name prefix are each a directory name under the warehouse.
TABLE_NAME_PART_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
TABLE_NAME_PART_RULE = "1 to 128 letters, digits, '_' or '-', not starting with '-'"


def check_table_name_part(value: object, field: str) -> str:
    """A catalog, schema or table name prefix of an inference table."""
    if not isinstance(value, str) or not TABLE_NAME_PART_PATTERN.match(value):
        raise SpecError.must(field, TABLE_NAME_PART_RULE, value, show=repr)
    return value
