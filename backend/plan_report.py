"""What `rtserve plan` shows: each resource's attribute changes, as Terraform does, and above them a
serving summary no Terraform tool has (which URL answers from which version after apply, traffic
splits before and after, replicas to start and stop, and warnings for stage moves that surprise).

Pure: built from each stack's saved plan (`terraform show -json`) and, when the server could be
asked, the registry's current stages. Rendered as text, Markdown (a pull-request comment) or JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rtserve.spec import SERVING_STAGES, WORKLOAD_SIZES, canonical_stage

UNKNOWN = "(known after apply)"
SENSITIVE = "(sensitive)"
# Replicas are counted at the server's default concurrency per replica (RTSERVE_REPLICA_CONCURRENCY).
DEFAULT_REPLICA_CONCURRENCY = 4
ACTIONS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
}
VersionKey = tuple[str, str]


@dataclass(frozen=True)
class AttributeChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceDiff:
    stack: str
    address: str
    type: str
    action: str
    attributes: tuple[AttributeChange, ...]
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ServingSummary:
    urls: list[str] = field(default_factory=list)
    traffic: list[str] = field(default_factory=list)
    replicas: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[tuple[str, list[str]]]:
        yield from (
            ("URLs after apply", self.urls),
            ("Traffic splits", self.traffic),
            ("Replicas", self.replicas),
            ("Warnings", self.warnings),
        )


# -- resource diffs ------------------------------------------------------------------------------
def resource_diffs(stack: str, plan: Mapping[str, Any]) -> list[ResourceDiff]:
    """The resources a saved plan changes, each with its changed attributes (no-ops and reads left out)."""
    diffs = []
    for change in plan.get("resource_changes", []):
        detail = change.get("change") or {}
        action = ACTIONS.get(tuple(detail.get("actions", ())))
        if action is None:
            continue
        before, after = detail.get("before") or {}, detail.get("after") or {}
        unknown = _flatten(detail.get("after_unknown") or {})
        hidden = {**_flatten(detail.get("before_sensitive") or {}), **_flatten(detail.get("after_sensitive") or {})}
        diffs.append(
            ResourceDiff(
                stack,
                str(change.get("address", "")),
                str(change.get("type", "")),
                action,
                tuple(_attribute_changes(_flatten(before), _flatten(after), unknown, hidden)),
                before,
                after,
            )
        )
    return diffs


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects and lists as dotted paths: served_entities[0].entity_version -> "2"."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat if flat or not prefix else {prefix: {}}
    if isinstance(value, list) and value and all(isinstance(item, dict | list) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value} if prefix else {}


def _attribute_changes(
    before: dict[str, Any], after: dict[str, Any], unknown: dict[str, Any], hidden: dict[str, Any]
) -> Iterator[AttributeChange]:
    for path in sorted(before.keys() | after.keys() | {p for p, v in unknown.items() if v is True}):
        if path == "id" or path.startswith("timeouts"):
            continue
        old = SENSITIVE if hidden.get(path) is True else before.get(path)
        new = UNKNOWN if unknown.get(path) is True else (SENSITIVE if hidden.get(path) is True else after.get(path))
        if old != new and not (old is None and new is None):
            yield AttributeChange(path, old, new)


# -- the serving summary -------------------------------------------------------------------------
def serving_summary(
    diffs: list[ResourceDiff], hosts: Mapping[str, str], stages: Mapping[VersionKey, str] | None = None
) -> ServingSummary:
    """`hosts`: each stack's server URL; `stages`: the registry's current stage of each (model, version)."""
    summary = ServingSummary()
    stages = stages or {}
    promoted: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (model, stage) -> [(stack, version)]
    for diff in diffs:
        host = hosts.get(diff.stack, "").rstrip("/")
        if diff.type == "rtserve_model_version_stage":
            _stage_change(diff, host, stages, promoted, summary)
        elif diff.type == "rtserve_serving_endpoint":
            _endpoint_change(diff, host, summary)
        elif diff.type == "rtserve_model_serving":
            _compute_change(diff, summary)
    for (model, stage), holders in sorted(promoted.items()):
        if len({stack for stack, _ in holders}) > 1:
            who = ", ".join(f"stack {stack} (version {version})" for stack, version in holders)
            summary.warnings.append(f"{model} {stage} is set by more than one stack: {who}; the last apply wins.")
    return summary


def _stage_change(
    diff: ResourceDiff,
    host: str,
    stages: Mapping[VersionKey, str],
    promoted: dict[tuple[str, str], list[tuple[str, str]]],
    summary: ServingSummary,
) -> None:
    if diff.action == "delete":
        model, version, stage = _stage_of(diff.before)
        summary.warnings.append(
            f"version {version} of {model} leaves {stage} (archived): its {stage} URL stops answering "
            "unless another version is in that stage."
        )
        return
    model, version, stage = _stage_of(diff.after)
    _, was, _ = _stage_of(diff.before) if diff.before else ("", "", "")
    promoted.setdefault((model, stage), []).append((diff.stack, version))
    if stage in SERVING_STAGES:
        url = f"{host}/model-endpoint/{model}/{stage}/invocations"
        before = f" (was version {was})" if was and was != version else (" (unchanged)" if was == version else "")
        summary.urls.append(f"{url} answers from version {version}{before}")
    current = stages.get((model, version))
    if current and current != stage and current in SERVING_STAGES:
        summary.warnings.append(
            f"version {version} of {model} leaves {current} for {stage}: a version is in one stage at a time, "
            f"so {model}'s {current} URL stops answering from it."
        )


def _stage_of(values: Mapping[str, Any]) -> tuple[str, str, str]:
    stage = str(values.get("stage") or "")
    return str(values.get("name") or ""), str(values.get("version") or ""), canonical_stage(stage) or stage


def _endpoint_change(diff: ResourceDiff, host: str, summary: ServingSummary) -> None:
    name = str((diff.after or diff.before).get("name") or diff.address)
    if diff.action == "delete":
        summary.traffic.append(f"serving endpoint {name} is deleted: {_split(diff.before)} stops answering")
        return
    before, after = _split(diff.before), _split(diff.after)
    if diff.action == "create":
        summary.traffic.append(f"serving endpoint {name} (new): {after}")
    elif before != after:
        summary.traffic.append(f"serving endpoint {name}: {before} -> {after}")
    if host:
        summary.urls.append(f"{host}/serving-endpoints/{name}/invocations answers with {after}")


def _split(values: Mapping[str, Any]) -> str:
    """ "current (iris 1) 90%, candidate (iris 2) 10%" from a serving endpoint's attributes."""
    if not values:
        return "nothing"
    entities = {e.get("name"): e for e in values.get("served_entities") or []}
    routes = (values.get("traffic_config") or {}).get("routes") or [
        {"served_model_name": name, "traffic_percentage": 100} for name in entities
    ]
    parts = []
    for route in routes:
        entity = entities.get(route.get("served_model_name"), {})
        model = f"{entity.get('entity_name', '?')} {entity.get('entity_version', '?')}"
        parts.append(f"{route.get('served_model_name')} ({model}) {_percent(route.get('traffic_percentage'))}%")
    return ", ".join(parts)


def _percent(value: Any) -> str:
    return str(int(value)) if isinstance(value, int | float) and float(value).is_integer() else str(value)


def _compute_change(diff: ResourceDiff, summary: ServingSummary) -> None:
    model = str((diff.after or diff.before).get("name") or diff.address)
    before, after = _computes(diff.before), _computes(diff.after)
    for stage in sorted(before.keys() | after.keys()):
        old, new = before.get(stage), after.get(stage)
        if old == new:
            continue
        old_replicas, new_replicas = _replicas(old), _replicas(new)
        change = new_replicas - old_replicas
        moves = f"{change} replicas to start" if change > 0 else f"{-change} to stop" if change < 0 else "same replicas"
        summary.replicas.append(
            f"{model} {stage}: {_describe(old)} -> {_describe(new)} "
            f"({old_replicas} -> {new_replicas} replicas per version, {moves})"
        )


def _computes(values: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    found = {}
    for block in values.get("compute_config") or []:
        stage = canonical_stage(str(block.get("stage") or "")) or str(block.get("stage"))
        found[stage] = (str(block.get("workload_size") or "Small"), bool(block.get("scale_to_zero_enabled")))
    return found


def _replicas(compute: tuple[str, bool] | None) -> int:
    """Replicas a served version starts with (the low end of its size's range; 0 with scale to zero)."""
    if compute is None or compute[0] not in WORKLOAD_SIZES or compute[1]:
        return 0
    return max(1, math.ceil(WORKLOAD_SIZES[compute[0]].min_concurrency / DEFAULT_REPLICA_CONCURRENCY))


def _describe(compute: tuple[str, bool] | None) -> str:
    if compute is None:
        return "not served"
    return compute[0] + (", scale to zero" if compute[1] else "")


# -- rendering -----------------------------------------------------------------------------------
def _value(value: Any) -> str:
    if value in (UNKNOWN, SENSITIVE):
        return str(value)
    return json.dumps(value)


def _change_lines(diff: ResourceDiff) -> Iterator[str]:
    for change in diff.attributes:
        if diff.action == "create":
            yield f"{change.path} = {_value(change.after)}"
        elif diff.action == "delete":
            yield f"{change.path} = {_value(change.before)} -> null"
        else:
            yield f"{change.path}: {_value(change.before)} -> {_value(change.after)}"


def as_text(diffs: list[ResourceDiff], summary: ServingSummary) -> list[str]:
    lines = []
    for title, items in summary.lines():
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  {'! ' if title == 'Warnings' else ''}{item}" for item in items)
    for diff in diffs:
        lines.append(f"{diff.stack}: {diff.action}: {diff.address}")
        lines.extend(f"    {line}" for line in _change_lines(diff))
    return lines


def as_markdown(diffs: list[ResourceDiff], summary: ServingSummary, totals: Mapping[str, str]) -> str:
    out = ["### Serving plan", ""]
    out += [f"- **{stack}**: {total}" for stack, total in totals.items()] + [""]
    for title, items in summary.lines():
        if items:
            marker = ":warning: " if title == "Warnings" else ""
            out += [f"**{title}**", ""] + [f"- {marker}{_md_escape(item)}" for item in items] + [""]
    if diffs:
        out += ["<details><summary>Resource changes</summary>", "", "```diff"]
        for diff in diffs:
            sign = {"create": "+", "delete": "-", "update": "~", "replace": "!"}.get(diff.action, " ")
            out.append(f"{sign} {diff.stack}: {diff.action}: {diff.address}")
            out += [f"{sign}     {line}" for line in _change_lines(diff)]
        out += ["```", "", "</details>"]
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def as_json(diffs: list[ResourceDiff], summary: ServingSummary, totals: Mapping[str, str]) -> dict[str, Any]:
    return {
        "stacks": dict(totals),
        "changes": any(diff.action for diff in diffs),
        "serving": asdict(summary),
        "resources": [
            {
                "stack": diff.stack,
                "address": diff.address,
                "type": diff.type,
                "action": diff.action,
                "attributes": [asdict(change) for change in diff.attributes],
            }
            for diff in diffs
        ],
    }
