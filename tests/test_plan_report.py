"""`rtserve plan`'s report from saved plans: attribute changes, the serving summary and its warnings."""

from __future__ import annotations

import json

import pytest

from rtserve.server.plan_report import UNKNOWN, as_json, as_markdown, as_text, resource_diffs, serving_summary

pytestmark = pytest.mark.unit
HOST = "http://rtserve:8080"


def stage(version: str, stage: str = "Production", *, before: str | None = None) -> dict:
    after = {"name": "iris", "version": version, "stage": stage, "invocation_url": None}
    change = {
        "actions": ["update"] if before else ["create"],
        "before": {"name": "iris", "version": before, "stage": stage, "invocation_url": "u"} if before else None,
        "after": after,
        "after_unknown": {"invocation_url": True, "id": True},
    }
    return {
        "address": f"rtserve_model_version_stage.{stage.lower()}",
        "type": "rtserve_model_version_stage",
        "change": change,
    }


def endpoint(before: dict | None, after: dict) -> dict:
    change = {"actions": ["update"] if before else ["create"], "before": before, "after": after, "after_unknown": {}}
    return {"address": "rtserve_serving_endpoint.canary", "type": "rtserve_serving_endpoint", "change": change}


def split(current: int, candidate: int) -> dict:
    return {
        "name": "canary",
        "served_entities": [
            {"name": "current", "entity_name": "iris", "entity_version": "1"},
            {"name": "candidate", "entity_name": "iris", "entity_version": "2"},
        ],
        "traffic_config": {
            "routes": [
                {"served_model_name": "current", "traffic_percentage": current},
                {"served_model_name": "candidate", "traffic_percentage": candidate},
            ]
        },
    }


def test_a_promotion_shows_the_url_the_attribute_and_the_stage_it_leaves():
    diffs = resource_diffs("production", {"resource_changes": [stage("2", before="1")]})
    summary = serving_summary(diffs, {"production": HOST}, {("iris", "2"): "Staging"})
    assert summary.urls == [f"{HOST}/model-endpoint/iris/Production/invocations answers from version 2 (was version 1)"]
    assert summary.warnings == [
        "version 2 of iris leaves Staging for Production: a version is in one stage at a time, "
        "so iris's Staging URL stops answering from it."
    ]
    text = as_text(diffs, summary)
    assert '    version: "1" -> "2"' in text and f'    invocation_url: "u" -> {UNKNOWN}' in text


def test_a_traffic_split_before_and_after_and_no_ops_left_out():
    plan = {
        "resource_changes": [
            endpoint(split(100, 0), split(90, 10)),
            {"address": "x", "type": "rtserve_model_serving", "change": {"actions": ["no-op"]}},
        ]
    }
    diffs = resource_diffs("production", plan)
    assert [d.address for d in diffs] == ["rtserve_serving_endpoint.canary"]
    summary = serving_summary(diffs, {"production": HOST})
    assert summary.traffic == [
        "serving endpoint canary: current (iris 1) 100%, candidate (iris 2) 0% -> "
        "current (iris 1) 90%, candidate (iris 2) 10%"
    ]


def test_compute_changes_count_the_replicas_to_start():
    before = {"name": "iris", "compute_config": [{"stage": "Production", "workload_size": "Small"}]}
    after = {"name": "iris", "compute_config": [{"stage": "Production", "workload_size": "Medium"}]}
    change = {"actions": ["update"], "before": before, "after": after, "after_unknown": {}}
    diffs = resource_diffs(
        "p", {"resource_changes": [{"address": "a", "type": "rtserve_model_serving", "change": change}]}
    )
    (line,) = serving_summary(diffs, {}).replicas
    assert line.startswith("iris Production: Small -> Medium (1 -> ") and "replicas to start" in line


def test_two_stacks_setting_one_stage_are_warned_about_and_the_formats_agree():
    diffs = resource_diffs("staging", {"resource_changes": [stage("2")]}) + resource_diffs(
        "production", {"resource_changes": [stage("1")]}
    )
    summary = serving_summary(diffs, {"staging": HOST, "production": HOST})
    assert any("set by more than one stack" in warning for warning in summary.warnings)
    totals = {"staging": "1 to add", "production": "1 to add"}
    markdown = as_markdown(diffs, summary, totals)
    assert markdown.startswith("### Serving plan") and ":warning:" in markdown and "```diff" in markdown
    document = as_json(diffs, summary, totals)
    assert json.loads(json.dumps(document))["serving"]["warnings"] == summary.warnings
    assert [r["action"] for r in document["resources"]] == ["create", "create"]
