"""ModelEndpoint: one synthesis per prop and per default, and one test per validation message."""

from __future__ import annotations

import re

import cdktf
import pytest

from rtserve.cdk import ComputeConfig, ModelEndpoint, RtserveStack, WorkloadSize
from tests.cdk.conftest import only, synth

pytestmark = pytest.mark.unit
SERVING = "rtserve_model_serving"
STAGE = "rtserve_model_version_stage"


# -- defaults --------------------------------------------------------------------------------------
def test_a_bare_endpoint_enables_serving_and_manages_no_stage(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="iris-classifier")
    serving = only(synth(stack), SERVING)
    assert serving == {
        "registered_model_name": "iris-classifier",
        "compute_config": [],
        "wait_for_ready": True,
        "disable_on_destroy": True,
        "timeouts": {"create": "20m", "update": "20m"},
    }
    assert STAGE not in synth(stack)["resource"]


def test_compute_defaults_match_the_backend(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="iris-classifier", production=ComputeConfig())
    assert only(synth(stack), SERVING)["compute_config"] == [
        {"stage": "Production", "workload_size": "Small", "scale_to_zero_enabled": False}
    ]


def test_promotions_default_to_not_archiving_other_versions(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="iris-classifier", promotions={"Production": "1"})
    assert only(synth(stack), STAGE)["archive_existing_versions"] is False


# -- props -----------------------------------------------------------------------------------------
def test_staging_sets_the_staging_compute_block(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", staging=ComputeConfig.medium(scale_to_zero=True))
    assert only(synth(stack), SERVING)["compute_config"] == [
        {"stage": "Staging", "workload_size": "Medium", "scale_to_zero_enabled": True}
    ]


def test_production_sets_the_production_compute_block(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", production=ComputeConfig.large())
    assert only(synth(stack), SERVING)["compute_config"] == [
        {"stage": "Production", "workload_size": "Large", "scale_to_zero_enabled": False}
    ]


def test_both_stages_render_staging_first(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", production=ComputeConfig.small(), staging=ComputeConfig.small())
    assert [b["stage"] for b in only(synth(stack), SERVING)["compute_config"]] == ["Staging", "Production"]


def test_workload_size_accepts_the_enum_or_its_name(stack: RtserveStack) -> None:
    assert ComputeConfig("Medium").workload_size is WorkloadSize.MEDIUM
    ModelEndpoint(stack, "iris", model_name="m", staging=ComputeConfig(WorkloadSize.LARGE))
    assert only(synth(stack), SERVING)["compute_config"][0]["workload_size"] == "Large"


def test_placement_synthesizes_as_given_and_is_left_out_by_default(stack: RtserveStack) -> None:
    placed = ComputeConfig(
        WorkloadSize.MEDIUM, placement_node_labels={"zone": "b"}, placement_resources={"licensed": 1}
    )
    ModelEndpoint(stack, "iris", model_name="m", production=placed, staging=ComputeConfig())
    staging, production = only(synth(stack), SERVING)["compute_config"]
    assert production == {
        "stage": "Production",
        "workload_size": "Medium",
        "scale_to_zero_enabled": False,
        "placement_node_labels": {"zone": "b"},
        "placement_resources": {"licensed": 1},
    }
    assert "placement_node_labels" not in staging and "placement_resources" not in staging


def test_placement_from_a_variable_is_accepted(stack: RtserveStack) -> None:
    amount = cdktf.TerraformVariable(stack, "licences", type="number")
    ModelEndpoint(
        stack, "iris", model_name="m", staging=ComputeConfig(placement_resources={"licensed": amount.number_value})
    )
    [block] = only(synth(stack), SERVING)["compute_config"]
    assert block["placement_resources"] == {"licensed": "${var.licences}"}


def test_each_promotion_is_a_version_stage_that_waits_for_serving(stack: RtserveStack) -> None:
    endpoint = ModelEndpoint(stack, "iris", model_name="iris-classifier", promotions={"Production": "1", "Staging": 2})
    document = synth(stack)
    stages = {v["stage"]: v for v in document["resource"][STAGE].values()}
    assert {s: v["version"] for s, v in stages.items()} == {"Production": "1", "Staging": "2"}
    serving_address = f"{SERVING}.{endpoint.resource.friendly_unique_id}"
    assert all(v["depends_on"] == [serving_address] for v in stages.values())
    assert all(v["name"] == "iris-classifier" for v in stages.values())
    assert set(endpoint.promotions) == {"Production", "Staging"}


def test_archive_existing_versions_is_passed_to_every_promotion(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"}, archive_existing_versions=True)
    assert only(synth(stack), STAGE)["archive_existing_versions"] is True


def test_comment_is_recorded_with_each_promotion(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"}, comment="PR #12")
    assert only(synth(stack), STAGE)["comment"] == "PR #12"


def test_wait_for_ready_false_reaches_both_resources(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"}, wait_for_ready=False)
    document = synth(stack)
    assert only(document, SERVING)["wait_for_ready"] is False
    assert only(document, STAGE)["wait_for_ready"] is False


def test_timeout_sets_create_and_update_timeouts(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"}, timeout="45m")
    document = synth(stack)
    assert only(document, SERVING)["timeouts"] == {"create": "45m", "update": "45m"}
    assert only(document, STAGE)["timeouts"] == {"create": "45m", "update": "45m"}


def test_disable_on_destroy_false_lets_stacks_share_a_model(stack: RtserveStack) -> None:
    ModelEndpoint(stack, "iris", model_name="m", disable_on_destroy=False)
    assert only(synth(stack), SERVING)["disable_on_destroy"] is False


def test_provider_selects_an_aliased_provider(stack: RtserveStack) -> None:
    from rtserve.cdk.rtserve import RtserveProvider

    other = RtserveProvider(stack, "other", host="http://other:1", alias="other")
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"}, provider=other)
    document = synth(stack)
    assert only(document, SERVING)["provider"] == "rtserve.other"
    assert only(document, STAGE)["provider"] == "rtserve.other"


def test_the_l1_child_is_called_resource(stack: RtserveStack) -> None:
    endpoint = ModelEndpoint(stack, "iris", model_name="m")
    assert endpoint.node.find_child("resource") is endpoint.resource


# -- read-only attributes --------------------------------------------------------------------------
def test_stage_urls_are_references_to_the_invocation_urls(stack: RtserveStack) -> None:
    endpoint = ModelEndpoint(stack, "iris", model_name="m")
    cdktf.TerraformOutput(stack, "staging", value=endpoint.staging_url)
    cdktf.TerraformOutput(stack, "production", value=endpoint.production_url)
    cdktf.TerraformOutput(stack, "state", value=endpoint.state)
    outputs = synth(stack)["output"]
    address = f"{SERVING}.{endpoint.resource.friendly_unique_id}"
    assert outputs["staging"]["value"] == f'${{{address}.invocation_urls["Staging"]}}'
    assert outputs["production"]["value"] == f'${{{address}.invocation_urls["Production"]}}'
    assert outputs["state"]["value"] == f"${{{address}.state}}"


def test_promotions_expose_their_version_url(stack: RtserveStack) -> None:
    endpoint = ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"})
    cdktf.TerraformOutput(stack, "v2", value=endpoint.promotions["Staging"].invocation_url)
    assert synth(stack)["output"]["v2"]["value"].endswith(".invocation_url}")


# -- validation ------------------------------------------------------------------------------------
def test_an_empty_model_name_is_refused(stack: RtserveStack) -> None:
    with pytest.raises(ValueError, match="model_name must be a non-empty string; got ''"):
        ModelEndpoint(stack, "iris", model_name="")


def test_a_model_name_from_a_variable_is_accepted(stack: RtserveStack) -> None:
    name = cdktf.TerraformVariable(stack, "model", type="string")
    ModelEndpoint(stack, "iris", model_name=name.string_value)
    assert only(synth(stack), SERVING)["registered_model_name"] == "${var.model}"


def test_compute_must_be_a_compute_config(stack: RtserveStack) -> None:
    with pytest.raises(TypeError, match=re.escape("staging must be a ComputeConfig (e.g. ComputeConfig.small())")):
        ModelEndpoint(stack, "iris", model_name="m", staging={"workload_size": "Small"})  # type: ignore[arg-type]


def test_an_unknown_workload_size_is_refused() -> None:
    with pytest.raises(ValueError, match="workload_size must be one of Small, Medium, Large; got 'XL'"):
        ComputeConfig("XL")


def test_placement_maps_of_the_wrong_kind_are_refused_with_the_served_entitys_messages() -> None:
    with pytest.raises(
        ValueError, match=re.escape("ComputeConfig: placement_node_labels must map label keys to strings")
    ):
        ComputeConfig(placement_node_labels={"zone": 2})  # type: ignore[dict-item]
    with pytest.raises(
        ValueError, match=re.escape("ComputeConfig: placement_resources must map Ray resource names to amounts above 0")
    ):
        ComputeConfig(placement_resources={"licensed": 0})


def test_a_promotion_to_an_unknown_stage_is_refused(stack: RtserveStack) -> None:
    with pytest.raises(ValueError, match="promotions keys must be 'Staging' or 'Production'; got 'prod'"):
        ModelEndpoint(stack, "iris", model_name="m", promotions={"prod": "1"})


@pytest.mark.parametrize("version", ["latest", "0", "", 0, True, "1.5"])
def test_a_promotion_to_something_other_than_a_version_number_is_refused(stack: RtserveStack, version: object) -> None:
    with pytest.raises(ValueError, match=re.escape("promotions['Staging'] must be a model version number such as '2'")):
        ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": version})  # type: ignore[dict-item]


def test_a_timeout_that_is_not_a_duration_is_refused(stack: RtserveStack) -> None:
    with pytest.raises(ValueError, match="timeout must be a duration such as '90s', '20m' or '1h30m'; got '20'"):
        ModelEndpoint(stack, "iris", model_name="m", timeout="20")


def test_nothing_is_created_when_validation_fails(stack: RtserveStack) -> None:
    with pytest.raises(ValueError):
        ModelEndpoint(stack, "iris", model_name="m", promotions={"Prod": "1"})
    assert [c.node.id for c in stack.node.children] == ["rtserve", "iris"]
    assert stack.node.find_child("iris").node.children == []


def test_a_promotion_to_a_referenced_version_is_accepted(stack: RtserveStack) -> None:
    from rtserve.cdk.rtserve import DataRtserveModelVersions

    latest = DataRtserveModelVersions(stack, "versions", name="m")
    ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": latest.latest_version})
    assert only(synth(stack), STAGE)["version"] == "${data.rtserve_model_versions.versions.latest_version}"


def test_url_of_an_unknown_stage_is_refused(stack: RtserveStack) -> None:
    with pytest.raises(ValueError, match="got 'Canary'"):
        ModelEndpoint(stack, "iris", model_name="m").url("Canary")


def test_resources_lists_the_serving_resource_and_each_promotion(stack: RtserveStack) -> None:
    from rtserve.cdk.rtserve import DataRtserveVersionAliases

    endpoint = ModelEndpoint(stack, "iris", model_name="m", promotions={"Staging": "2"})
    DataRtserveVersionAliases(stack, "aliases", registered_model_name="m", depends_on=endpoint.resources)
    [aliases] = synth(stack)["data"]["rtserve_version_aliases"].values()
    assert aliases["depends_on"] == [
        f"{SERVING}.{endpoint.resource.friendly_unique_id}",
        f"{STAGE}.{endpoint.promotions['Staging'].friendly_unique_id}",
    ]
