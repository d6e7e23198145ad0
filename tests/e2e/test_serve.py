"""`mlflow models serve` on the registered champion answers REST requests (real server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402

from ecdflow.testing import free_port, stop_process_group  # noqa: E402

pytestmark = pytest.mark.slow


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(payload).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read(), parse_constant=_no_nan)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _no_nan(name: str):
    raise AssertionError(f"the server sent {name}, which is not JSON")


def _wait(url: str, proc: subprocess.Popen, timeout_s: float = 240.0) -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(1.0)
    raise AssertionError("server did not answer in time")


def test_serve_champion_rest(tmp_path):
    from pymatgen.core import Lattice, Structure

    from ecdflow import registry

    s = demo_settings(tmp_path)
    pid = make_pipeline_run(s)
    registry.register_best(s, pid, "K_VRH")
    registry.promote(s, "bulk")
    port = free_port()
    bindir = str(Path(sys.executable).parent)  # mlflow starts uvicorn from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": s.tracking_uri,
           "MLFLOW_REGISTRY_URI": s.registry_uri,
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    mlflow_bin = str(Path(bindir) / "mlflow")
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", "models:/test-bulk@champion", "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc)
        nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                         [[0, 0, 0], [0.5, 0.5, 0.5]])
        code, body = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_records": [
            {"input": nacl.to(fmt="cif")}, {"input": "not a crystal at all"},
            {"input": nacl.to_json(), "format": "json"}]})
        assert code == 200, body
        rows = body["predictions"]
        assert rows[0]["formula"] == "NaCl" and 1 < rows[0]["prediction"] < 600
        assert rows[0]["uncertainty"] >= 0 and rows[0]["error"] == ""
        assert rows[1]["error"].startswith("row 1: not a recognised input")
        assert rows[1]["prediction"] is None and rows[1]["uncertainty"] is None
        # the calibrated interval and the domain flag; null where there is no prediction
        assert rows[0]["lower"] < rows[0]["prediction"] < rows[0]["upper"]
        assert rows[0]["coverage"] == 0.9 and isinstance(rows[0]["out_of_domain"], bool)
        assert all(rows[1][k] is None for k in ("lower", "upper", "coverage", "out_of_domain"))
        assert rows[2]["prediction"] == pytest.approx(rows[0]["prediction"])
        code, body = _post(f"http://127.0.0.1:{port}/invocations",
                           {"dataframe_records": [{"text": "no input column"}]})
        assert 400 <= code < 500 and "input" in json.dumps(body)
    finally:
        stop_process_group(proc)  # the server's own session (started above)
        log.close()
