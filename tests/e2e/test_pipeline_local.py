"""End to end: `ecd-elastic` under kfp.local on a tiny config (2 models x 1 target x 1 split,
40 materials at grid 16), tracking to a temporary MLflow store."""

import json
import shutil
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT, load_settings
from ecdflow.testing import RUN_ENV_VARS, write_profile

pytestmark = pytest.mark.slow


@pytest.fixture()
def tiny(tmp_path: Path, monkeypatch):
    rows = [json.loads(line) for line in
            (REPO_ROOT / "data" / "fcc" / "materials.jsonl").read_text().splitlines()]
    # physical moduli, two-atom rock-salt cells only (large cells such as elpasolites ring
    # slightly negative on a 16^3 procrystal grid and would fail validation, as they should)
    rows = [r for r in rows if 0 < r["K_VRH"] < 600 and 0 < r["G_VRH"] < 600
            and r.get("family", "").startswith("rocksalt")][:40]
    table = tmp_path / "materials.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    work = tmp_path / "work"
    pfile = write_profile(tmp_path / "params.yaml", "tiny", work, {
        "paths": {"materials": str(table)},
        "targets": ["K_VRH"], "density": {"grid": 16, "smearing_A": 0.3},
        "records": {"num_shards": 1},
        "splits": {"n_folds": 2, "folds": [0], "loeo_elements": []},
        "training": {"epochs": 1, "repeats": 1, "patience": 1, "batch_size": 16},
        "models": {"enabled": ["rf_magpie", "cnn_magpie"]},
        "mlflow": {"experiment": "e2e"},
    })
    # the task subprocesses inherit the environment: no outside MLflow server, no profile
    for var in RUN_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield pfile, load_settings(pfile, "tiny")
    shutil.rmtree(work, ignore_errors=True)


def test_local_run_trains_every_planned_task_and_registers(tiny):
    import mlflow

    from ecdflow.kfp.plan import build_plan
    from ecdflow.kfp.runners import registered_versions, run_local
    from ecdflow.tracking import TAG_MODEL, pipeline_runs

    pfile, settings = tiny
    plan = build_plan(settings)
    assert [(r.model, r.target, r.split) for r in plan] == [
        ("rf_magpie", "K_VRH", "cv-0"), ("cnn_magpie", "K_VRH", "cv-0")]
    out = run_local(settings, pfile)
    run_id = out["run_id"]
    assert run_id
    runs = pipeline_runs(settings, run_id, role="train")
    assert sorted(r.data.tags[TAG_MODEL] for r in runs) == ["cnn_magpie", "rf_magpie"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags.get("mlflow.parentRunId") for r in runs)  # nested under the parent
    versions = registered_versions(settings, run_id)
    assert {v["name"] for v in versions} == {settings.registry.model_names["K_VRH"]}
    # the gate task judged the challenger and recorded its verdict; no alias moved
    from ecdflow.gate import TAG_GATE, TAG_GATE_CHAMPION

    client = mlflow.MlflowClient()
    for v in versions:
        tags = client.get_model_version(v["name"], v["version"]).tags
        assert tags[TAG_GATE] == "passed" and tags[TAG_GATE_CHAMPION] == "none"
        assert "champion" not in v["aliases"].split(",")
    assert len(pipeline_runs(settings, run_id, role="gate")) == 1
    assert out["tasks"] == len(plan) + 7  # start ... register, external, gate
    from ecdflow.tracking import TAG_NOTE, find_parent_run

    parent = client.get_run(find_parent_run(settings, run_id))  # closed, with the results
    assert parent.info.status == "FINISHED" and parent.info.end_time
    assert "| K_VRH |" in parent.data.tags[TAG_NOTE]
    assert out["published"]["records"] == Path(settings.paths.records_dir)  # README's paths
    assert any(Path(settings.paths.records_dir).iterdir())
    assert (Path(settings.paths.validation_dir) / "summary.json").exists()
    assert "Executing task" in out["log"].read_text()  # kfp.local's own output, kept
    assert settings.tracking_uri.startswith("sqlite:///" + str(settings.work_dir))
    # kfp.local kept each task's outputs under the pipeline root in the work dir
    assert (settings.work_dir / "kfp-local").is_dir()
    assert mlflow.get_tracking_uri() == settings.tracking_uri
    print(json.dumps({"seconds": round(out["seconds"], 1), "tasks": out["tasks"]}))


def test_a_failing_validation_stops_the_run_before_training(tiny):
    from ecdflow.errors import EcdflowError
    from ecdflow.kfp.runners import run_local
    from ecdflow.tracking import configure

    pfile, settings = tiny
    table = Path(settings.paths.materials)
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    for r in rows:
        r["K_VRH"] = -5.0  # physically impossible: a blocking expectation
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(EcdflowError, match="local pipeline run failed in task 'validate'"):
        run_local(settings, pfile, {"register_models": False})
    import mlflow

    configure(settings)
    trained = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("e2e").experiment_id],
        filter_string="tags.\"ecdflow.role\" = 'train'")
    assert trained == []
    parent, = mlflow.MlflowClient().search_runs(  # ended FAILED, naming the task
        [mlflow.get_experiment_by_name("e2e").experiment_id],
        filter_string="tags.\"ecdflow.role\" = 'parent'")
    assert parent.info.status == "FAILED" and parent.info.end_time
    assert parent.data.tags["ecdflow.failed_task"] == "validate"


def test_run_local_cli_prints_progress_results_and_next_steps(tiny):
    """`ecdflow pipeline run-local` at default verbosity: one line per task, no third-party
    output, then the results with their legend, the report, the UI and the promote command."""
    import re

    from click.testing import CliRunner

    from ecdflow.cli import cli
    from ecdflow.tracking import RESULTS_LEGEND

    pfile, settings = tiny
    res = CliRunner().invoke(cli, ["--params", str(pfile), "--profile", "tiny", "pipeline",
                                   "run-local"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    progress = [ln for ln in lines if re.match(r"\[\d+/9\] ", ln)]
    assert [p.split(" ... ")[0] for p in progress][:4] == [
        "[1/9] start", "[2/9] preprocess", "[3/9] validate",
        "[4/9] train rf_magpie K_VRH cv-fold-0"]
    assert all(re.search(r" \.\.\. done \d+ s$", p) for p in progress) and len(progress) == 9
    out = res.output
    for noise in ("executor_input", "Unable to register", "Deprecat", "Executing task"):
        assert noise not in out
    assert RESULTS_LEGEND in out and "| K_VRH |" in out
    assert "report: " in out and "make ui" in out and "ecdflow promote --target K_VRH" in out
    assert len(lines) < 60
    print(res.output)
