"""What a model version was logged with that its endpoints describe: its input example and its signature.

Served versions are read from the copy the backend downloaded for its replicas; others from the registry
(just the one file).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from rtserve.server import paths
from rtserve.server.errors import ApiError
from rtserve.server.services import Services

EXAMPLE_FILES = ("serving_input_example.json", "input_example.json")


async def _logged_file(
    services: Services, model: str, version: str, filenames: tuple[str, ...]
) -> tuple[str, str] | None:
    local = paths.model_dir(services.settings.data_dir, model, version)
    found = await asyncio.to_thread(_from_files, local, filenames)
    if found is None:
        found = await asyncio.to_thread(_download, services, model, version, filenames)
    return found


async def signature_inputs(services: Services, model: str, version: str) -> list[dict[str, Any]] | None:
    """The column specs of the version's input signature (`[{"name", "type"}]`, as MLmodel has them), or None."""
    found = await _logged_file(services, model, version, ("MLmodel",))
    if found is None:
        return None
    try:
        schema = Model.from_dict(yaml.safe_load(found[1])).get_input_schema()
    except (yaml.YAMLError, MlflowException, TypeError, ValueError, AttributeError):
        return None
    return schema.to_dict() if schema is not None else None


def _from_files(directory: Path, filenames: tuple[str, ...]) -> tuple[str, str] | None:
    for filename in filenames:
        path = directory / filename
        if path.is_file():
            return filename, path.read_text(encoding="utf-8")
    return None


def _download(services: Services, model: str, version: str, filenames: tuple[str, ...]) -> tuple[str, str] | None:
    for filename in filenames:
        with tempfile.TemporaryDirectory(prefix="rtserve-logged-") as scratch:
            try:
                local = services.registry.download_file(model, version, filename, Path(scratch))
            except (ApiError, OSError):
                continue
            if local is not None:
                return filename, local.read_text(encoding="utf-8")
    return None


def compact_json(value: object, indent: int = 0) -> str:
    """Indented JSON with each list of plain values on one line: a data row stays a row in the editor."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        items = [f"{pad}  {json.dumps(k)}: {compact_json(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [f"{pad}  {compact_json(v, indent + 2)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def as_request(filename: str, text: str) -> Any:
    """The example as a scoring request (serving_input_example.json already is one); JSONDecodeError if not JSON."""
    example = json.loads(text)
    if (
        filename == "input_example.json"
        and isinstance(example, dict)
        and not ({"dataframe_split", "dataframe_records", "instances", "inputs"} & example.keys())
    ):
        return {"dataframe_split": example} if {"columns", "data"} <= example.keys() else {"inputs": example}
    if filename == "input_example.json" and isinstance(example, list):
        return {"instances": example}
    return example


def scoring_body(filename: str, text: str) -> str:
    """The example as a scoring request body, laid out for the UI's editor."""
    return compact_json(as_request(filename, text))


async def example_request(services: Services, model: str, version: str) -> Any:
    """The input example logged with the version as a scoring request, or None (none logged, or not JSON)."""
    found = await _logged_file(services, model, version, EXAMPLE_FILES)
    try:
        return as_request(*found) if found else None
    except json.JSONDecodeError:
        return None


async def input_example(services: Services, model: str, version: str) -> tuple[str, str] | None:
    """(file it came from, request body) of the input example logged with the version, or None.

    Served versions are read from the copy the backend downloaded for its replicas; others from
    the registry (just the example file).
    """
    found = await _logged_file(services, model, version, EXAMPLE_FILES)
    if found is None:
        return None
    filename, text = found
    try:
        return filename, scoring_body(filename, text)
    except json.JSONDecodeError:
        return filename, text
