"""Imports a replica needs, done once in the engine's fork server so every replica forks warm.

Importing MLflow, pandas and scikit-learn takes seconds; a fork of a process that already did it
takes milliseconds. Everything here is optional: a missing library only makes replicas of models
that need it start slower.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

MODULES = (
    "numpy",
    "pandas",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.pyfunc.scoring_server",
    "mlflow.models",
    "mlflow.sklearn",
    "cloudpickle",
    "sklearn",
    "skops.io",  # how mlflow.sklearn saves models by default; it imports most of scikit-learn
    "backend.worker.scoring",
    "backend.worker.server",
    "backend.worker.replica",
)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import `modules`, skipping those that fail; returns the ones that could not be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # an optional library that is absent or broken must not stop the fork server
            missing.append(name)
    if missing:
        logger.info("Not preloaded: %s", ", ".join(missing))
    return missing


def warm_caches() -> None:
    """Fill caches that every model load would otherwise fill again in each replica.

    MLflow checks a model's requirements against the installed packages on load; its first call
    maps all installed distributions to modules (about 0.6 s here). Mapping it once in the fork
    server makes the check cheap in every replica; packages installed later are not in the map,
    which only affects MLflow's requirement-mismatch warnings.
    """
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()
    except Exception:  # a private MLflow helper: if it moved, replicas only start a bit slower
        logger.info("Could not pre-compute MLflow's package map", exc_info=True)


preload()
warm_caches()
