"""End to end: train_one on tiny synthetic records into a sqlite MLflow store in tmp_path."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")

from ecdflow import tracking as tr  # noqa: E402
from ecdflow.cli import cli  # noqa: E402
from ecdflow.cli.common import run_main  # noqa: E402
from ecdflow.config import load_settings  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from ecdflow.records import write_synthetic_records

    work = tmp_path_factory.mktemp("work")
    write_synthetic_records(str(work / "rec"), 40, 8, seed=0)
    settings = load_settings(profile="quick", overrides={
        "paths": {"work_dir": str(work)}, "training": {"epochs": 2, "batch_size": 16},
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}"},
        "models": {"params": {"cnn2d_se": {"width_scale": 0.0625}}}})
    return settings, str(work / "rec")


def test_cnn_run_logs_tags_metrics_artifacts_and_a_loadable_model(env):
    from ecdflow.train import train_one

    settings, rec = env
    parent = tr.start_parent_run(settings, "pr-e2e")
    res = train_one(settings, "cnn_magpie", "K_VRH", "loeo-Cs", records_dir=rec,
                    parent_run_id=parent, pipeline_run_id="pr-e2e")
    run = mlflow.MlflowClient().get_run(res["run_id"])
    t = run.data.tags
    assert t["mlflow.parentRunId"] == parent
    assert (t[tr.TAG_MODEL], t[tr.TAG_TARGET], t[tr.TAG_SPLIT]) == ("cnn_magpie", "K_VRH",
                                                                      "loeo-Cs")
    assert (t[tr.TAG_SPLIT_KIND], t[tr.TAG_FOLD], t[tr.TAG_REPEAT]) == ("loeo", "Cs", "0")
    assert t[tr.TAG_PIPELINE_RUN] == "pr-e2e" and t[tr.TAG_DATA_VERSION].startswith("sha256:")
    assert t[tr.TAG_PROFILE] == "quick" and tr.TAG_GIT in t
    assert {tr.METRIC_MAE, tr.METRIC_RMSE, tr.METRIC_R2, "loss", "val_loss", "lr"} <= set(
        run.data.metrics)
    hist = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in hist] == [0, 1]
    assert run.data.params["model.filters"] == "(32, 48, 64)"
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {tr.ARTIFACT_PREDICTIONS, tr.ARTIFACT_PARITY, tr.ARTIFACT_LEARNING_CURVE} <= names
    pred = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=tr.ARTIFACT_PREDICTIONS))
    assert list(pred.columns) == ["material_id", "formula", "elements", "y_true", "y_pred"]
    assert pred.elements.str.contains("Cs").all() and len(pred) == int(run.data.params["n_test"])
    assert run.inputs.dataset_inputs[0].dataset.digest == t[tr.TAG_DATA_VERSION][7:39]
    model = mlflow.keras.load_model(t[tr.TAG_MODEL_URI])
    assert model.output.shape[-1] == 1
    again = train_one(settings, "cnn_magpie", "K_VRH", "loeo-Cs", records_dir=rec,
                      parent_run_id=parent, pipeline_run_id="pr-e2e")
    assert again["reused"] and again["run_id"] == res["run_id"]


def test_rf_and_fusion_runs_and_results_table(env):
    from ecdflow.results import results_table
    from ecdflow.train import train_one

    settings, rec = env
    parent = tr.start_parent_run(settings, "pr-2")
    rf = train_one(settings, "rf_magpie", "G_VRH", "cv-0", records_dir=rec,
                   parent_run_id=parent, pipeline_run_id="pr-2")
    rf_model = mlflow.sklearn.load_model(
        mlflow.MlflowClient().get_run(rf["run_id"]).data.tags[tr.TAG_MODEL_URI])
    assert rf_model.n_estimators == 50
    fu = train_one(settings, "fusion", "G_VRH", "cv-0", records_dir=rec,
                   parent_run_id=parent, pipeline_run_id="pr-2")  # parts trained inline
    models = {r.data.tags[tr.TAG_MODEL] for r in tr.pipeline_runs(settings, "pr-2")}
    assert models == {"rf_magpie", "fusion", "cnn_magpie", "cnn2d_se"}
    assert fu[tr.METRIC_RMSE] > 0
    summary = results_table(settings, "pr-2")
    assert set(summary.model) == models and (summary.n_runs == 1).all()
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent, tr.ARTIFACT_RESULTS)}
    assert {"results/table2_cv.md", "results/results.csv"} <= arts
    assert tr.ARTIFACT_SPLITS in {a.path for a in mlflow.MlflowClient().list_artifacts(parent)}


def test_cli_unknown_names_are_one_line_errors(env, capsys, monkeypatch):
    settings, rec = env
    monkeypatch.setenv("ECDFLOW_WORK_DIR", str(settings.work_dir))
    for args, word in ((["--model", "resnet", "--target", "K_VRH", "--split", "cv-0"], "rf_magpie"),
                       (["--model", "cnn3d", "--target", "B", "--split", "cv-0"], "G_VRH"),
                       (["--model", "cnn3d", "--target", "K_VRH", "--split", "cv-9"], "loeo-Cs")):
        code = run_main(cli, ["train", *args, "--records", rec])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and word in err, err


def test_fusion_with_frozen_parts_trains_only_its_head_on_cached_features(env):
    """The served fusion model is the parts (unchanged weights) joined to a head trained on
    their cached features: its prediction equals head(extractor(x)) and the parts' own
    penultimate outputs are untouched."""
    import numpy as np

    from ecdflow.datasets import part_features
    from ecdflow.models import fusion
    from ecdflow.records_reader import read_index
    from ecdflow.train import train_one

    settings, rec = env
    parent = tr.start_parent_run(settings, "pr-head")
    fu = train_one(settings, "fusion", "K_VRH", "cv-1", records_dir=rec,
                   parent_run_id=parent, pipeline_run_id="pr-head")
    runs = {r.data.tags[tr.TAG_MODEL]: r for r in tr.pipeline_runs(settings, "pr-head")}
    load = lambda m: mlflow.keras.load_model(runs[m].data.tags[tr.TAG_MODEL_URI])  # noqa: E731
    model, parts = load("fusion"), {m: load(m) for m in fusion.PARTS}
    assert fu["epochs"] >= 1 and int(runs["fusion"].data.params["n_train"]) > 0
    from ecdflow.fit import checkpoint_dir
    from ecdflow.records import read_manifest
    from ecdflow.schema import RunKey

    cfg = fusion.SPEC.config(settings.models.params.get("fusion"))
    head_ckpt = checkpoint_dir(settings, RunKey("fusion", "K_VRH", "cv-1", 0),
                               read_manifest(rec)["data_hash"],
                               {**cfg.model_dump(), "fit": "head on cached part features"})
    assert (head_ckpt / "state.json").exists()  # the head-on-cached-features path ran
    ids = list(read_index(rec).material_id)[:12]
    ext = fusion.extractor(parts, 8)
    feats, _ = part_features(ext, rec, "K_VRH", ("ecd", "magpie"), ids, [0, 48], 8, False)
    assert feats.shape == (12, 2, 64)
    frozen = model.get_layer("fusion_parts")
    top = model.get_layer("fusion_head")
    direct = np.asarray(top({fusion.FEATURES: feats[:, 0]})).reshape(-1)
    _, x, _ = __import__("ecdflow.datasets", fromlist=["dataset_arrays"]).dataset_arrays(
        rec, "K_VRH", ("ecd", "magpie"), ids, False)
    served = np.asarray(model(x, training=False)).reshape(-1)
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(frozen(x)), feats[:, 0], rtol=1e-5, atol=1e-5)
