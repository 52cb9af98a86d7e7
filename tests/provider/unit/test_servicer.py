"""Planning through the gRPC servicer, as Terraform does: declared defaults, and no perpetual diff."""

from __future__ import annotations

from typing import Any

import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.provider import _encode_state
from tf.types import Unknown
from tf.utils import read_dynamic_value

import rtserve.provider.main
from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.servicer import RtserveServicer
from tests.provider.unit.helpers import HOST

pytestmark = pytest.mark.unit
TYPE = "rtserve_model_serving"
UNPLACED = {"placement_node_labels": None, "placement_resources": None}


@pytest.fixture
def servicer(provider: RtserveProvider) -> RtserveServicer:
    return RtserveServicer(provider)


def value(servicer: RtserveServicer, state: dict | None) -> pb.DynamicValue:
    return _encode_state(servicer._get_res_attrs(TYPE), servicer._get_res_blocks(TYPE), state, None)


def config(**overrides: Any) -> dict:
    base = {
        "id": None,
        "registered_model_name": "iris",
        "compute_config": [{"stage": "Staging", "workload_size": None, "scale_to_zero_enabled": None, **UNPLACED}],
        "wait_for_ready": None,
        "disable_on_destroy": None,
        "timeouts": None,
        "state": None,
        "state_message": None,
        "invocation_urls": None,
        "version_invocation_urls": None,
    }
    return base | overrides


def plan(servicer: RtserveServicer, prior: dict | None, proposed: dict | None, cfg: dict | None) -> Any:
    request = pb.PlanResourceChange.Request(
        type_name=TYPE,
        prior_state=value(servicer, prior),
        proposed_new_state=value(servicer, proposed),
        config=value(servicer, cfg),
    )
    response = servicer.PlanResourceChange(request, None)
    assert not response.diagnostics, response.diagnostics
    return response


def applied_state() -> dict:
    return config(
        id="iris",
        compute_config=[{"stage": "Staging", "workload_size": "Medium", "scale_to_zero_enabled": False, **UNPLACED}],
        wait_for_ready=True,
        disable_on_destroy=True,
        state="ENDPOINT_STATE_READY",
        state_message="Ready",
        invocation_urls={
            stage: f"{HOST}/model-endpoint/iris/{stage}/invocations" for stage in ("Staging", "Production")
        },
        version_invocation_urls={"1": f"{HOST}/model/iris/1/invocations"},
    )


def test_a_create_plan_fills_the_declared_defaults(servicer: RtserveServicer) -> None:
    planned = read_dynamic_value(plan(servicer, None, config(), config()).planned_state)

    assert planned["compute_config"] == [
        {"stage": "Staging", "workload_size": "Small", "scale_to_zero_enabled": False, **UNPLACED}
    ]
    assert planned["wait_for_ready"] is True and planned["disable_on_destroy"] is True
    assert planned["id"] == "iris"
    assert planned["state"] is Unknown


def test_an_unchanged_configuration_plans_exactly_the_prior_state(servicer: RtserveServicer) -> None:
    prior = applied_state()
    cfg = config(
        compute_config=[{"stage": "Staging", "workload_size": "Medium", "scale_to_zero_enabled": None, **UNPLACED}]
    )
    response = plan(servicer, prior, prior, cfg)
    assert read_dynamic_value(response.planned_state) == read_dynamic_value(value(servicer, prior))
    assert list(response.requires_replace) == []


def test_removing_a_workload_size_from_the_config_plans_the_default_again(servicer: RtserveServicer) -> None:
    prior = applied_state()  # Medium, which Terraform carries into the proposed state
    planned = read_dynamic_value(plan(servicer, prior, prior, config()).planned_state)
    assert planned["compute_config"][0]["workload_size"] == "Small"
    assert planned["state"] is Unknown  # a compute change: the status is known only after apply


def test_another_model_name_requires_replacement(servicer: RtserveServicer) -> None:
    prior = applied_state()
    proposed = {**prior, "registered_model_name": "other"}
    response = plan(servicer, prior, proposed, config(registered_model_name="other"))
    assert [step.attribute_name for path in response.requires_replace for step in path.steps] == [
        "registered_model_name"
    ]


def test_a_destroy_plan_is_a_null_state_without_error(servicer: RtserveServicer) -> None:
    response = plan(servicer, applied_state(), None, None)
    assert read_dynamic_value(response.planned_state) is None


def test_the_entry_point_serves_with_this_servicer(monkeypatch: pytest.MonkeyPatch) -> None:
    import tf.provider
    import tf.runner

    seen = []
    monkeypatch.setattr(tf.provider, "ProviderServicer", tf.provider.ProviderServicer)
    monkeypatch.setattr(tf.runner, "run_provider", lambda p, argv: seen.append((p, tf.provider.ProviderServicer)))
    rtserve.provider.main.main(["provider"])
    assert isinstance(seen[0][0], RtserveProvider)
    assert seen[0][1] is RtserveServicer
