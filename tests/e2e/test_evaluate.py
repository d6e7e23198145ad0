"""`evaluate_pipeline_run`, `register_best` and `run_external_validation` on a tiny real
pipeline run in a tmp MLflow store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import DATA_VERSION, demo_pipeline_run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo_pipeline_run(tmp_path_factory.mktemp("evaluate"))


def test_evaluate_report_tables_and_parent_artifacts(run):
    import mlflow

    from ecdflow import tracking
    from ecdflow.evaluate import evaluate_pipeline_run, latest_pipeline_run_id, max_pool

    s, pid = run
    assert latest_pipeline_run_id(s) == pid
    out = evaluate_pipeline_run(s, pid)
    md = Path(out["report_md"]).read_text()
    assert "k-fold CV (k = 2): all folds ran, 1 repeat" in md and "5-fold" not in md
    assert "Leave-one-element-out" in md and "different data" in md.lower()
    p = out["protocol"]
    assert (p["n_materials"], p["folds"], p["repeats"], p["loeo"]) == (48, ["0", "1"], [0], ["Cl"])
    assert p["data_version"] == DATA_VERSION and p["profile"] == "quick"
    t2 = out["tables"]["table2_cv"]
    assert t2.count("**") == 2  # one best cell in the one target row
    assert "FCC2170" in md and "0.943 / 18.721" in md  # the paper's RF bulk cell, labelled
    assert {"parity_rf_magpie_K_VRH.png", "tsne_magpie.png", "tsne_ecd.png",
            "learning_rf_magpie_K_VRH.png"} <= set(out["figures"])
    assert Path(out["report_html"]).read_text().count("<img") == len(out["figures"])
    elem = (Path(out["out_dir"]) / "element_errors.csv").read_text()
    assert "Cl" in elem
    parent = tracking.find_parent_run(s, pid)
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(parent, "evaluation")}
    assert "evaluation/report.md" in names and "evaluation/tsne_ecd.png" in names
    assert "cv_K_VRH_rf_magpie_rmse_gpa" in client.get_run(parent).data.metrics
    # the interval's measured coverage: a report section, coverage.csv, parent metrics
    import pandas as pd

    cov = pd.read_csv(Path(out["out_dir"]) / "coverage.csv")
    assert set(cov.test_set) == {"cv", "loeo", "loeo-Cl"} and (cov.nominal == 0.9).all()
    assert set(cov.model) == {"rf_magpie", "cnn_magpie"}
    assert (cov[cov.test_set == "cv"].n == 48).all()
    assert "Prediction intervals: coverage at nominal 90%" in md
    row = cov[(cov.model == "rf_magpie") & (cov.test_set == "cv")].iloc[0]
    assert f"{row.coverage:.2f} / {row.width_gpa:.3g}" in md
    pm = client.get_run(parent).data.metrics
    assert pm["cv_K_VRH_rf_magpie_coverage_90"] == pytest.approx(row.coverage)
    assert "cv_K_VRH_rf_magpie_loeo_coverage_90_Cl" in pm
    import numpy as np

    assert max_pool(np.ones((60, 60, 60))).shape == (1000,)
    assert max_pool(np.arange(32**3, dtype=float).reshape(32, 32, 32)).shape == (1000,)


def test_register_best_then_external_validation(run):
    import mlflow

    from ecdflow import registry, tracking
    from ecdflow.external import run_external_validation

    s, pid = run
    summary = registry.cv_summary(s, pid)
    best = registry.select_best(summary, "K_VRH", "rmse")
    mv = registry.register_best(s, pid, "bulk")
    assert mv.tags[tracking.TAG_MODEL] == best and "challenger" in mv.aliases
    assert mv.tags[tracking.TAG_DATA_VERSION] == DATA_VERSION
    assert mv.tags[tracking.TAG_PIPELINE_RUN] == pid and mv.tags["ecdflow.n_members"] == "2"
    rmse = float(summary.query("model == @best and target == 'K_VRH'").rmse.iloc[0])
    assert float(mv.tags["ecdflow.cv_rmse_gpa"]) == pytest.approx(rmse, rel=1e-4)
    out = run_external_validation(s, pid)
    res = out["results"]["challenger/K_VRH"]
    # Cu is in the demo training data: removed from both references, reported
    assert res["dcdft"]["removed"] == ["Cu"] and res["experiment"]["removed"] == ["Cu"]
    assert res["dcdft"]["external"]["n"] == 10 and res["experiment"]["external"]["n"] == 9
    assert res["dcdft"]["seen_diagnostic"]["n"] == 1
    client = mlflow.MlflowClient()
    v = client.get_model_version(mv.name, mv.version)
    assert float(v.tags["ecdflow.external.dcdft.K_VRH.rmse_gpa"]) == pytest.approx(
        res["dcdft"]["external"]["rmse_gpa"])
    assert v.tags["ecdflow.external.dcdft.removed"] == "Cu"
    metrics = client.get_run(tracking.find_parent_run(s, pid)).data.metrics
    assert "external_challenger_dcdft_K_VRH_rmse_gpa" in metrics
    assert "OQMD" in Path(out["report"]).read_text()
