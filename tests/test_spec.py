"""rtserve.spec: the API's enums, defaults and rules, one copy for the backend, the provider and the constructs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rtserve import __version__, spec

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def test_spec_imports_the_standard_library_only() -> None:
    """The constructs-only install has no MLflow, FastAPI or tf: importing the spec must need none of them."""
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
before = set(sys.modules)
import rtserve.spec
loaded = sorted(set(sys.modules) - before)
print(json.dumps({{"file": rtserve.spec.__file__, "loaded": loaded}}))
"""
    run = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(run.stdout)
    assert Path(result["file"]) == ROOT / "rtserve" / "spec.py"
    third_party = [
        name
        for name in result["loaded"]
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "rtserve"
    ]
    assert third_party == []
    assert sorted(name for name in result["loaded"] if name.startswith("rtserve")) == ["rtserve", "rtserve.spec"]


# -- single source -----------------------------------------------------------------------------
# Values that must come from rtserve.spec wherever the provider and the constructs use them.
SPELLED_ONCE = {
    *spec.WORKLOAD_SIZES,
    *spec.ALL_STAGES,
    *spec.PERMISSION_LEVELS,
    *spec.RATE_LIMIT_KEYS,
    *spec.RENEWAL_PERIODS,
    spec.NO_GROUPS_KEY,
    spec.ADMINS_GROUP,
    spec.PROVIDER_HOSTNAME,
}
VERSION_STRINGS = {"0.1.0", __version__}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (any bare string statement)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def _literals(folder: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return found


@pytest.mark.parametrize("folder", ["provider", "cdk"])
def test_the_provider_and_the_constructs_spell_no_default_or_enum_of_their_own(folder: str) -> None:
    repeated = [
        (where, line, value)
        for where, line, value in _literals(folder)
        if value in SPELLED_ONCE
        or any(version in value for version in VERSION_STRINGS)
        or spec.NAME_PATTERN.pattern in value
        or spec.NAME_RULE in value
    ]
    assert repeated == [], "take these from rtserve.spec"


def test_the_backend_takes_its_rules_from_the_spec() -> None:
    from rtserve.server import validate
    from rtserve.server.control import rate_limits, serving_config, stages, workloads

    assert workloads.WORKLOAD_SIZES is spec.WORKLOAD_SIZES
    assert workloads.SERVING_STAGES is spec.SERVING_STAGES
    assert workloads.DEFAULT_WORKLOAD_SIZE is spec.DEFAULT_WORKLOAD_SIZE
    assert stages.ALL_STAGES is spec.ALL_STAGES
    assert serving_config.NAME_PATTERN is spec.NAME_PATTERN
    assert rate_limits.MAX_CALLS == spec.MAX_CALLS and rate_limits.RENEWAL_PERIODS is spec.RENEWAL_PERIODS
    assert validate.MAX_VERSION == spec.MAX_VERSION


def test_the_provider_and_the_constructs_name_the_same_provider() -> None:
    import rtserve.provider as provider

    assert (provider.SOURCE, provider.VERSION) == (spec.PROVIDER_SOURCE, __version__)


# -- the rules -----------------------------------------------------------------------------------
def refused(check, *args) -> spec.SpecError:  # noqa: ANN001
    with pytest.raises(spec.SpecError) as raised:
        check(*args)
    assert isinstance(raised.value, ValueError)
    return raised.value


def test_version_numbers() -> None:
    assert spec.check_version_number(" 03 ") == "3" and spec.check_version_number(7) == "7"
    for bad in ("0", "latest", 0, True, 2**63, "1.5", "", None):
        error = refused(spec.check_version_number, bad, "config.served_entities[0].entity_version")
        assert str(error).startswith("'config.served_entities[0].entity_version' must be a model version number")


def test_workload_sizes_and_their_concurrency() -> None:
    assert list(spec.WORKLOAD_SIZES) == [size.value for size in spec.WorkloadSize]
    assert spec.DEFAULT_WORKLOAD_SIZE in spec.WORKLOAD_SIZES
    assert [size.concurrency for size in spec.WORKLOAD_SIZES.values()] == ["4", "8-16", "16-64"]
    assert spec.check_workload_size(spec.WorkloadSize.LARGE) == "Large"
    error = refused(spec.check_workload_size, "XL", "workload_size")
    assert str(error) == "'workload_size' must be one of Small, Medium, Large; got 'XL'."
    assert (error.field, error.rule, error.value) == ("workload_size", "one of Small, Medium, Large", "XL")


def test_stages() -> None:
    assert spec.canonical_stage("production") == spec.PRODUCTION and spec.canonical_stage("Prod") is None
    assert set(spec.SERVING_STAGES) < set(spec.ALL_STAGES)
    assert spec.check_stage("staging") == spec.STAGING
    assert str(refused(spec.check_stage, "Archived")) == "'stage' must be one of Staging, Production; got 'Archived'."


def test_names() -> None:
    assert spec.check_name("blue_1-a") == "blue_1-a"
    for bad in ("", "a/b", "x" * 64, 5):
        refused(spec.check_name, bad)
    assert str(refused(spec.check_name, "a b", "config.served_entities[1].name")) == (
        "'config.served_entities[1].name' must be 1 to 63 letters, digits, '-' or '_'; got 'a b'."
    )


def test_traffic() -> None:
    assert spec.check_traffic_percentage(0) == 0 and spec.check_traffic_percentage(100) == 100
    for bad in (-1, 101, 50.0, True, "50"):
        assert refused(spec.check_traffic_percentage, bad).rule == "a whole number from 0 to 100"
    spec.check_traffic_total([90, 10])
    error = refused(spec.check_traffic_total, [80, 30])
    assert (str(error), error.value, error.reason) == (
        "Traffic percentages must sum to 100; they sum to 110.",
        110,
        "total",
    )


def test_rate_limits() -> None:
    assert spec.check_calls(0) == 0 and spec.check_calls(spec.MAX_CALLS) == spec.MAX_CALLS
    assert str(refused(spec.check_calls, -1, "rate_limits[0].calls")) == (
        "'rate_limits[0].calls' must be a whole number of calls, 0 or more; got -1."
    )
    assert refused(spec.check_calls, spec.MAX_CALLS + 1).reason == "too_many"
    assert refused(spec.check_calls, 1.5).reason == "invalid"
    assert spec.check_rate_limit_key(None) == spec.ENDPOINT_KEY == spec.DEFAULT_RATE_LIMIT_KEY
    assert refused(spec.check_rate_limit_key, "user_group").reason == "no_groups"
    assert "one of endpoint, user, service_principal" in str(refused(spec.check_rate_limit_key, "ip"))
    assert spec.check_renewal_period(spec.DEFAULT_RENEWAL_PERIOD) == "minute"
    assert "must be 'minute'" in str(refused(spec.check_renewal_period, "hour"))
    assert spec.check_principal(None, "endpoint") is None and spec.check_principal("ci", "user") == "ci"
    assert refused(spec.check_principal, "", "user").reason == "no_name"
    assert refused(spec.check_principal, "ci", None).reason == "needs_token_key"
    assert spec.rate_limit_callers(None, None) == spec.rate_limit_callers("endpoint", None)
    assert spec.rate_limit_callers("user", None) == spec.rate_limit_callers("service_principal", None)


def test_permission_levels() -> None:
    assert spec.PERMISSION_LEVELS == ("CAN_VIEW", "CAN_QUERY", "CAN_MANAGE")
    assert str(refused(spec.check_permission_level, "IS_OWNER")) == (
        "'permission_level' must be one of CAN_VIEW, CAN_QUERY, CAN_MANAGE; got 'IS_OWNER'."
    )
