"""The real registry client over the embedded MLflow store, with artifacts that need no model.

`download` writes a minimal MLmodel file instead of copying artifacts, so the controller's Prepare
step succeeds for any registered version (the fake engine never loads it). Models are registered
cheaply, straight into the store: `register` replaces a model by a fresh one with `versions`
versions, all in stage None (version numbers start at 1 again).
"""

from __future__ import annotations

from pathlib import Path

from rtserve.server import paths
from rtserve.server.registry import Registry, registry_errors

MLMODEL = """\
flavors:
  python_function:
    loader_module: tests.fakes.registry
    env: {}
mlflow_version: fake
"""


class FakeRegistry(Registry):
    def download(self, name: str, version: str, models_dir: Path) -> str:
        target = paths.version_dir(models_dir, name, version)
        if not (target / "MLmodel").exists():
            with registry_errors():
                self.client.get_model_version(name, version)  # a version that does not exist still fails
            target.mkdir(parents=True, exist_ok=True)
            (target / "MLmodel").write_text(MLMODEL)
        return str(target)

    def download_file(self, name: str, version: str, filename: str, scratch: Path) -> Path | None:
        return None

    # -- set-up of the tests (straight into the store: no request to the app) -----------------------
    def register(self, name: str, versions: int) -> None:
        client = self.client
        if self.model_exists(name):
            client.delete_registered_model(name)
        client.create_registered_model(name)
        for number in range(1, versions + 1):
            client.create_model_version(name, f"mlflow-artifacts:/fake/{name}/{number}")

    def reset(self, models: dict[str, int]) -> None:
        """Hold exactly `models` (name -> number of versions, all in stage None, no aliases); what already
        is that way is kept, which saves most tests the re-registration."""
        held = {model.name for model in self.client.search_registered_models(max_results=1000)}
        for name in held - set(models):
            self.client.delete_registered_model(name)
        for name, versions in models.items():
            if name not in held or not self._pristine(name, versions):
                self.register(name, versions)

    def _pristine(self, name: str, versions: int) -> bool:
        found = self.client.search_model_versions(f"name = '{name}'")
        expected = {str(v) for v in range(1, versions + 1)}
        return {str(mv.version) for mv in found} == expected and all(
            mv.current_stage == "None" and not mv.aliases for mv in found
        )

    def stages(self, name: str) -> dict[str, str]:
        """Version -> stage, like the fake backend's `models[name]`."""
        found = self.client.search_model_versions(f"name = '{name}'")
        return {str(mv.version): mv.current_stage for mv in sorted(found, key=lambda mv: int(mv.version))}

    def set_stage(self, name: str, version: str, stage: str) -> None:
        self.client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)

    def delete_version(self, name: str, version: str) -> None:
        self.client.delete_model_version(name, version)
