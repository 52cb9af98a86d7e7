"""The MLflow Model Registry, reached through MLflow's own client.

External, it is an MLflow tracking server reached over HTTP. Embedded, the client reads the same
SQL store the embedded server writes, in this process: no HTTP to itself, so no credential for the
backend's own API exists, and none can leak to replicas. Artifacts the embedded server keeps
(`mlflow-artifacts:/` URIs) are copied from its artifact directory. Calls block; callers run them
in a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow.artifacts
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rtserve.server import paths
from rtserve.server.control.stages import RegisteredVersion
from rtserve.server.errors import ApiError


@contextlib.contextmanager
def registry_errors() -> Iterator[None]:
    """MLflow's exceptions carry Databricks error codes already; keep them, drop the rest of the noise."""
    try:
        yield
    except MlflowException as exc:
        code = exc.error_code if isinstance(exc.error_code, str) else "INVALID_PARAMETER_VALUE"
        if code == "INTERNAL_ERROR":
            code = "TEMPORARILY_UNAVAILABLE"
        raise ApiError(code, f"Model registry: {exc.message}") from exc
    except OSError as exc:  # connection refused, DNS, timeouts of the underlying requests
        raise ApiError("TEMPORARILY_UNAVAILABLE", f"Model registry is unreachable: {exc}") from exc


def _quote_filter(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class Registry:
    """`tracking_uri` is the external server's URL, or the embedded server's store URI together with
    `artifacts_root`, the directory where the embedded server keeps `mlflow-artifacts:/` URIs."""

    def __init__(self, tracking_uri: str, artifacts_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_root = artifacts_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def model_exists(self, name: str) -> bool:
        try:
            with registry_errors():
                self.client.get_registered_model(name)
        except ApiError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def require_model(self, name: str) -> None:
        if not self.model_exists(name):
            raise ApiError("RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")

    def model_versions(self, name: str) -> list[ModelVersion]:
        with registry_errors():
            return list(self.client.search_model_versions(f"name = '{_quote_filter(name)}'"))

    def registered_model(self, name: str) -> RegisteredModel:
        with registry_errors():
            return self.client.get_registered_model(name)

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version, from the registered model: MLflow's SQL store leaves `ModelVersion.aliases` empty
        in `search_model_versions` (mlflow/mlflow#9783, #16734), so a version's own list cannot be trusted."""
        with registry_errors():
            return {alias: str(version) for alias, version in self.client.get_registered_model(name).aliases.items()}

    def versions(self, name: str) -> tuple[RegisteredVersion, ...]:
        found = self.model_versions(name)
        aliases = self.aliases(name) if found else {}
        return tuple(
            RegisteredVersion(
                version=str(mv.version),
                stage=mv.current_stage or "None",
                aliases=tuple(alias for alias, version in aliases.items() if version == str(mv.version)),
                creation_timestamp=mv.creation_timestamp or 0,
            )
            for mv in found
        )

    def get_version(self, name: str, version: str) -> ModelVersion:
        with registry_errors():
            return self.client.get_model_version(name, version)

    def transition(self, name: str, version: str, stage: str, archive_existing_versions: bool) -> ModelVersion:
        with registry_errors():
            return self.client.transition_model_version_stage(
                name, version, stage, archive_existing_versions=archive_existing_versions
            )

    def download(self, name: str, version: str, models_dir: Path) -> str:
        """Copy the version's artifacts under models_dir once; later calls reuse the copy."""
        target = paths.version_dir(models_dir, name, version)
        if (target / "MLmodel").exists():
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            with registry_errors():
                # Resolve the storage location with this client: a `models:/` URI would be resolved
                # against MLflow's process-wide default registry, not this one.
                location = self.client.get_model_version_download_uri(name, version)
                self._fetch(location, staging)
            root = _model_root(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(root, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return str(target)

    def download_file(self, name: str, version: str, filename: str, scratch: Path) -> Path | None:
        """One file of the version's artifacts (e.g. its input example) copied under `scratch`, or None."""
        with registry_errors():
            location = self.client.get_model_version_download_uri(name, version)
            try:
                return self._fetch(f"{location.rstrip('/')}/{filename}", scratch)
            except (MlflowException, OSError):
                return None

    def _fetch(self, location: str, destination: Path) -> Path:
        """Copy the artifact (file or directory) at `location` under `destination`; returns the copy."""
        local = self._embedded_artifact(location)
        if local is None:
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(destination), tracking_uri=self.tracking_uri
                )
            )
        copy = destination / local.name
        if local.is_dir():
            shutil.copytree(local, copy, dirs_exist_ok=True)
        else:
            shutil.copyfile(local, copy)  # FileNotFoundError when the file is absent
        return copy

    def _embedded_artifact(self, location: str) -> Path | None:
        """Where the embedded server keeps an `mlflow-artifacts:` location; None for any other location."""
        parsed = urlparse(location)
        if self.artifacts_root is None or parsed.scheme != "mlflow-artifacts":
            return None
        relative = unquote(parsed.path).lstrip("/")
        return paths.under(self.artifacts_root, relative) if relative else self.artifacts_root


def _model_root(directory: Path) -> Path:
    if (directory / "MLmodel").exists():
        return directory
    for found in directory.rglob("MLmodel"):
        return found.parent
    raise ApiError("INVALID_STATE", "The model version's artifacts hold no MLmodel file; is it an MLflow model?")
