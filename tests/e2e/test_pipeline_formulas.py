"""End to end: `ecdflow pipeline run-local --materials table.csv` on a composition-only table
(material_id, formula, K_VRH, G_VRH; 200 committed formulas): records without density, the
density models skipped with one line each, the Magpie models trained, registered with inputs
["magpie"] and grid 0, and the served model answering a formula and refusing argon."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT
from ecdflow.testing import RUN_ENV_VARS, write_profile

pytestmark = pytest.mark.slow

DENSITY_MODELS = ("cnn3d", "cnn2d_se", "fusion")


@pytest.fixture()
def formulas(tmp_path: Path, monkeypatch):
    rows = [json.loads(line) for line in
            (REPO_ROOT / "data" / "fcc" / "materials.jsonl").read_text().splitlines()]
    rows = [r for r in rows if 0 < r["K_VRH"] < 600 and 0 < r["G_VRH"] < 600][:200]
    table = tmp_path / "formulas.csv"
    table.write_text("material_id,formula,K_VRH,G_VRH\n" + "".join(
        f"{r['material_id']},{r['formula']},{r['K_VRH']},{r['G_VRH']}\n" for r in rows))
    work = tmp_path / "work"
    pfile = write_profile(tmp_path / "params.yaml", "compo", work, {
        "targets": ["K_VRH"], "records": {"num_shards": 1},
        "splits": {"n_folds": 2, "folds": [0, 1], "loeo_elements": []},
        "training": {"epochs": 2, "repeats": 1, "patience": 1, "batch_size": 32},
        # every model enabled: the density ones must be skipped, not fail
        "models": {"enabled": ["rf_magpie", "cnn_magpie", *DENSITY_MODELS]},
        "mlflow": {"experiment": "e2e-formulas"},
    })
    for var in RUN_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield pfile, table, work
    shutil.rmtree(work, ignore_errors=True)


def test_composition_only_table_through_the_pipeline(formulas):
    import mlflow
    import pandas as pd
    from click.testing import CliRunner

    from ecdflow.cli import cli
    from ecdflow.config import load_settings
    from ecdflow.kfp.runners import registered_versions
    from ecdflow.records import has_density, read_manifest
    from ecdflow.tracking import TAG_MODEL, configure, pipeline_runs

    pfile, table, work = formulas
    res = CliRunner().invoke(cli, ["--params", str(pfile), "--profile", "compo", "pipeline",
                                   "run-local", "--materials", str(table)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = res.output
    for m in DENSITY_MODELS:  # one line per skipped model, naming the table
        line = f"skipping {m}: records carry no density (composition-only table formulas.csv)"
        assert out.count(line) == 1, out
    run_id = re.search(r"pipeline run (\S+): (\d+) tasks", out)
    assert run_id and int(run_id.group(2)) == 2 * 2 + 7, out  # 2 models x 2 folds + fixed

    # the records kfp.local kept: no density, grid 0, every formula written
    manifests = list((work / "kfp-local").rglob("manifest.json"))
    assert manifests
    man = read_manifest(str(manifests[0].parent))
    assert not has_density(man) and man["grid"] == 0 and man["ecd_source"] == "none"
    assert man["counts"]["written"] == 200

    settings = load_settings(pfile, "compo")
    configure(settings)
    runs = pipeline_runs(settings, run_id.group(1), role="train")
    assert sorted(r.data.tags[TAG_MODEL] for r in runs) == sorted(
        ["rf_magpie", "rf_magpie", "cnn_magpie", "cnn_magpie"])
    assert all(r.info.status == "FINISHED" and r.data.params["grid"] == "0" for r in runs)

    versions = registered_versions(settings, run_id.group(1))
    assert len(versions) == 1
    v = versions[0]
    model = mlflow.pyfunc.load_model(f"models:/{v['name']}/{v['version']}")
    manifest = model.unwrap_python_model().manifest
    assert manifest["inputs"] == ["magpie"] and manifest["grid"] == 0
    pred = model.predict(pd.DataFrame({"input": ["MgO", "Ar"]}))
    assert math.isfinite(pred["prediction"][0]) and 0 < pred["prediction"][0] < 600
    assert pred["error"][0] == ""
    assert pred["prediction"][1] is None or not math.isfinite(pred["prediction"][1])
    assert "Ar has no Magpie" in pred["error"][1], pred["error"][1]


def test_resume_continues_a_stopped_run_under_its_own_id(formulas):
    """`run-local --resume latest` continues the newest unfinished run: same pipeline run id,
    same parent run (reopened, then FINISHED); finished training tasks left out of the graph
    (not trained or logged again), the one whose run a stop killed trained again; an unknown
    id is one line and exit 2."""
    import mlflow
    from click.testing import CliRunner

    from ecdflow.cli import cli
    from ecdflow.config import load_settings
    from ecdflow.tracking import (
        TAG_FAILED_TASK,
        TAG_MODEL,
        TAG_REPEAT,
        TAG_SPLIT,
        TAG_TARGET,
        find_parent_run,
        pipeline_runs,
    )

    pfile, table, _ = formulas
    base = ["--params", str(pfile), "--profile", "compo", "pipeline", "run-local",
            "--materials", str(table), "--models", "rf_magpie"]
    first = CliRunner().invoke(cli, base)
    assert first.exit_code == 0, first.output + repr(first.exception)
    rid = re.search(r"pipeline run (\S+): \d+ tasks", first.output).group(1)
    s = load_settings(str(pfile), "compo")
    parent = find_parent_run(s, rid)
    client = mlflow.MlflowClient()
    client.set_terminated(parent, "FAILED")  # as a stopped or failed run leaves it
    client.set_tag(parent, TAG_FAILED_TASK, "train-rf-magpie-k-vrh-cv-1")
    trained = pipeline_runs(s, rid)
    killed = trained[0]  # a training run a stop left unfinished: its task runs again
    client.set_terminated(killed.info.run_id, "KILLED")
    n_tasks = int(re.search(r"pipeline run \S+: (\d+) tasks", first.output).group(1))

    again = CliRunner().invoke(cli, [*base, "--resume", "latest"])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert f"resuming pipeline run {rid}" in again.output
    left_out = len(trained) - 1  # rf_magpie: one run per task
    assert f"{left_out} training tasks of {rid} finished before: left out" in again.output
    resumed = re.search(r"pipeline run (\S+): (\d+) tasks", again.output)
    assert resumed.group(1) == rid and int(resumed.group(2)) == n_tasks - left_out
    assert find_parent_run(s, rid) == parent
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and TAG_FAILED_TASK not in run.data.tags
    after = {r.info.run_id: r for r in pipeline_runs(s, rid)}
    new = set(after) - {r.info.run_id for r in trained}
    assert len(after) == len(trained) + 1 and len(new) == 1  # only the killed task trained
    keys = (TAG_MODEL, TAG_TARGET, TAG_SPLIT, TAG_REPEAT)
    assert [after[n].data.tags[k] for n in new for k in keys] == [
        killed.data.tags[k] for k in keys]

    bad = CliRunner().invoke(cli, [*base, "--resume", "no-such-run"])
    assert bad.exit_code == 2 and "--resume no-such-run: no such pipeline run" in bad.output
