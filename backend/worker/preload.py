"""Imports a replica needs, done once in the engine's fork server so every replica forks warm.

Importing MLflow, pandas and scikit-learn takes seconds; a fork of a process that already did it
takes milliseconds. Everything here is optional: a missing library only makes replicas of models
that need it start slower.

Importing this module in the fork server also ties the fork server's life to the engine's process
(`die_with_engine`): multiprocessing's own check (its "alive" pipe) never fires while a replica
lives, since every replica inherits that pipe, so a killed backend would leave the fork server
behind. The replicas watch the engine themselves (`backend.worker.replica`).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys

from rtserve.server.worker.credentials import drop_credentials
from rtserve.server.worker.replica import FORKSERVER_ENGINE_PID_ENV

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
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
    "rtserve.server.worker.scoring",
    "rtserve.server.worker.server",
    "rtserve.server.worker.replica",
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


def die_with_engine(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """In the fork server: be killed (SIGKILL) when the engine's process dies; True if arranged.

    Linux only (prctl's parent-death signal, through ctypes); elsewhere a no-op. It applies only
    when the engine named itself in FORKSERVER_ENGINE_PID_ENV, so that importing this module
    elsewhere changes nothing. The signal is cleared in forked children: replicas are not tied to
    the fork server. If the engine died before the signal was armed, this process exits at once.
    """
    engine_pid = environ.pop(FORKSERVER_ENGINE_PID_ENV, None)
    if engine_pid is None or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("Could not tie the fork server to its engine: errno %d", ctypes.get_errno())
            return False
    except (OSError, AttributeError):  # no usable C library: the fork server may outlive a killed engine
        logger.warning("Could not tie the fork server to its engine", exc_info=True)
        return False
    if str(os.getppid()) != engine_pid:  # orphaned before the signal was armed: it will never come
        os._exit(0)
    return True


die_with_engine()
drop_credentials()
preload()
warm_caches()
