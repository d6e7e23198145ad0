"""The user's path after a pipeline run, on a tiny demo store: the parent run ends with the
results, the registered version carries its model card, README's serve command and request
work verbatim, and the MLflow UI pages and the report render in headless Chromium."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import DATA_VERSION, demo_settings, make_pipeline_run  # noqa: E402

from ecdflow.config import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.slow
NAMES = {"K_VRH": "ecdflow-bulk-modulus", "G_VRH": "ecdflow-shear-modulus"}  # README's names


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A finished demo pipeline run: evaluated, closed, registered under README's model names
    and promoted to champion."""
    from ecdflow import registry
    from ecdflow.evaluate import evaluate_pipeline_run
    from ecdflow.kfp.runners import finish_run

    tmp = tmp_path_factory.mktemp("user")
    s = demo_settings(tmp, model_names=NAMES)
    pid = make_pipeline_run(s)
    evaluate_pipeline_run(s, pid, tsne=False)
    finish_run(s, pid)
    mv = registry.register_best(s, pid, "K_VRH")
    registry.promote(s, "K_VRH")
    return s, pid, mv, tmp


def test_parent_run_ends_with_results_and_a_failed_one_names_its_task(demo):
    import mlflow

    from ecdflow import tracking
    from ecdflow.kfp.runners import finish_run

    s, pid, _, _ = demo
    parent = mlflow.MlflowClient().get_run(tracking.find_parent_run(s, pid))
    assert parent.info.status == "FINISHED"
    assert parent.info.end_time >= parent.info.start_time  # a duration in the UI
    note = parent.data.tags[tracking.TAG_NOTE]
    assert "| target | cnn_magpie | rf_magpie |" in note and "| K_VRH |" in note
    assert tracking.RESULTS_LEGEND in note and "Leave-one-element-out" in note
    assert "report.html" in note
    assert "cv_K_VRH_rf_magpie_rmse_gpa" in parent.data.metrics
    # a second, failed run: FAILED, with the task named
    make_pipeline_run(s, pid="pr-test-failed", seed=1)
    run_id = finish_run(s, "pr-test-failed", failed_task="train cnn3d K_VRH cv-fold-1")
    failed = mlflow.MlflowClient().get_run(run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags[tracking.TAG_FAILED_TASK] == "train cnn3d K_VRH cv-fold-1"
    assert "**FAILED** in task `train cnn3d K_VRH cv-fold-1`" in \
        failed.data.tags[tracking.TAG_NOTE]
    assert not [r for r in mlflow.MlflowClient().search_runs(
        [tracking.configure(s)], "attributes.status = 'RUNNING'")]


def test_registered_version_carries_its_model_card(demo):
    s, pid, mv, _ = demo
    card = mv.description
    assert card.startswith(f"# K_VRH (bulk modulus, GPa) — {mv.tags['ecdflow.model']}")
    assert f"Data version: `{DATA_VERSION}`" in card and f"Pipeline run: `{pid}`" in card
    assert f"RMSE {float(mv.tags['ecdflow.cv_rmse_gpa']):.1f} GPa" in card
    assert f"RMSE {float(mv.tags['ecdflow.baseline_cv_rmse_gpa']):.1f} GPa" in card
    assert "(cv-0, cv-1)" in card
    cov = float(mv.tags["ecdflow.coverage_90"])  # the measured figure, not a placeholder
    assert f"measured coverage {cov:.3f} under CV" in card and "nominal 90%" in card
    assert "## Intended use" in card and "## Limits" in card
    assert mv.tags["ecdflow.profile"] == "quick" and mv.tags["ecdflow.grid"] == "8"


def _readme_block(pattern: str) -> str:
    """The one README line matching ``pattern`` (comments stripped)."""
    lines = [ln for ln in (REPO_ROOT / "README.md").read_text().splitlines()
             if re.match(pattern, ln)]
    assert len(lines) == 1, f"README has {len(lines)} lines matching {pattern!r}"
    return lines[0].split("  #")[0].strip()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_readme_serve_command_and_request_work_verbatim(demo):
    s, _, _, tmp = demo
    serve = shlex.split(_readme_block(r"\.venv/bin/ecdflow serve "))
    curl = shlex.split(_readme_block(r"curl .*/invocations"))
    url, body = curl[2], curl[curl.index("-d") + 1]
    port = int(re.search(r":(\d+)/", url).group(1))
    assert port == 5001
    from ecdflow.testing import free_port, stop_process_group

    port = free_port()  # the documented one may be taken on a shared machine
    url = url.replace(":5001/", f":{port}/")
    cwd = tmp / "fresh-shell"
    cwd.mkdir()
    # a fresh shell: no venv on PATH, only the store's location (the demo's) in the env
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PATH="/usr/bin:/bin", MLFLOW_TRACKING_URI=s.tracking_uri)
    argv = [str(REPO_ROOT / serve[0]), *serve[1:], "--port", str(port)]
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        end = time.time() + 240
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except OSError:
                assert time.time() < end, "server did not answer /ping in 240 s"
                time.sleep(1.0)
        code, answer = _post(url, body.encode())
        assert code == 200, answer
        row = answer["predictions"][0]
        assert row["formula"] == "NaCl" and row["error"] == ""
        assert math.isfinite(row["prediction"]) and 1 < row["prediction"] < 600
        assert math.isfinite(row["uncertainty"]) and row["uncertainty"] >= 0
        assert not list(cwd.iterdir())  # no stray mlflow.db / mlruns
    finally:
        stop_process_group(proc)  # the server's own session (started above)
        log.close()


def test_serve_without_champion_says_what_to_run(tmp_path):
    s = demo_settings(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": s.tracking_uri}
    out = subprocess.run([str(Path(sys.executable).parent / "ecdflow"), "serve", "--target",
                          "shear"], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "error: no champion for ecdflow-shear-modulus yet: run "
        "`ecdflow promote --target G_VRH`")
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="run `make browser`")
def test_screenshots_of_mlflow_and_the_report(demo):
    from ecdflow.screenshots import PAGES, take_screenshots

    s, pid, mv, _ = demo
    out = REPO_ROOT / ".ecdflow" / "screenshots"
    shots = take_screenshots(s, out, pid)
    assert sorted(shots) == sorted(PAGES)
    for path in shots.values():
        assert path.stat().st_size > 20_000  # a rendered page, not a blank one
    run_list = (out / "mlflow-run-list.txt").read_text()
    assert f"pipeline-{pid}" in run_list
    cv_runs = (out / "mlflow-cv-runs.txt").read_text()  # the shared view: flat, with metrics
    assert "cnn_magpie · K_VRH · cv-fold-0 · r0" in cv_runs and "loeo" not in cv_runs
    assert "test_rmse_gpa" in cv_runs
    parent = (out / "mlflow-parent-run.txt").read_text()
    assert "Cross-validation" in parent and "Finished" in parent and "Evaluations" not in parent
    version = (out / "mlflow-model-version.txt").read_text()
    assert f"Version {mv.version}" in version and "Intended use" in version
