"""The team MLflow server script starts a real server that ecdflow's conventions work against."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ecdflow import tracking
from ecdflow.config import REPO_ROOT, load_settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_script_serves_tracking_and_parent_runs(tmp_path: Path, monkeypatch):
    import mlflow
    import requests

    port = _free_port()
    env = dict(os.environ, PORT=str(port),
               BACKEND_STORE_URI=f"sqlite:///{tmp_path / 'srv.db'}",
               ARTIFACTS_DESTINATION=str(tmp_path / "art"))
    proc = subprocess.Popen(["bash", str(REPO_ROOT / "tracking" / "server.sh")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not answer within 120 s")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("ECDFLOW_WORK_DIR", str(tmp_path / "work"))
        s = load_settings()
        parent = tracking.start_parent_run(s, "pr-1")
        assert tracking.start_parent_run(s, "pr-1") == parent  # found, not duplicated
        run = mlflow.get_run(parent)
        assert run.data.tags[tracking.TAG_ROLE] == "parent"
        exp = mlflow.get_experiment(run.info.experiment_id)
        assert exp.name == s.mlflow.experiment
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
