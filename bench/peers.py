"""The peer rtserve is measured against: `mlflow models serve --env-manager local -w N`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rtserve.server.process import free_port


class MlflowServe:
    """`mlflow models serve -m <model dir> --env-manager local -w <workers>` in a child process."""

    def __init__(self, model_dir: Path, workers: int, log_path: Path) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        return [mlflow, "models", "serve", "-m", str(self.model_dir), "--env-manager", "local"] + [
            "-w",
            str(self.workers),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
        ]

    def start(self, timeout: float = 120.0) -> MlflowServe:
        # mlflow runs `uvicorn` by name: the virtualenv's bin must come first on PATH.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with self.log_path.open("ab") as log:
            # Its own session: stopping it must reach uvicorn and every worker it forked.
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"mlflow models serve did not answer /ping in {timeout:g} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> MlflowServe:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
