"""`ecdflow results`: docs/results/ from an MLflow store (tiny demo store), the paired
statistics, and the plan page before any run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402


@pytest.mark.parametrize("n", [0, 2, 4])
def test_paired_refuses_fewer_than_five_folds(n):
    from ecdflow.results_doc import paired

    out = paired(np.arange(n) + 1.0, np.arange(n) + 2.0)
    assert out["n"] == n and out["wilcoxon_p"] is None
    assert out["verdict"] == f"not enough folds (n = {n} < 5)"


def test_paired_on_five_folds_is_the_exact_wilcoxon():
    from ecdflow.results_doc import paired

    a = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    out = paired(a, a + np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # a lower on all 5 folds: exact two-sided signed-rank p = 2 / 2^5
    assert out["wins"] == 5 and out["mean_diff"] == pytest.approx(-3.0)
    assert out["wilcoxon_p"] == pytest.approx(2 / 32)
    assert out["t_p"] < 0.05  # differences 1..5: t = 4.24, p = 0.013
    assert out["verdict"] == (
        "a - b = -3.00 GPa mean RMSE over n = 5 folds, a lower on 5 of 5; Wilcoxon p = 0.0625 "
        "(cannot go below 0.0625 with 5 folds), paired t p = 0.0132: significant at 0.05 by "
        "the t-test")
    named = paired(a + 1.0, a, ("fusion", "rf_magpie"))["verdict"]
    assert named.startswith("fusion - rf_magpie = +1.00 GPa") and "fusion lower on 0 of 5" \
        in named
    six = paired(np.arange(6.0), np.arange(6.0) + np.array([1, 2, 3, 4, 5, 6.0]))
    assert six["wilcoxon_p"] == pytest.approx(2 / 64) and "by Wilcoxon" in six["verdict"]


def test_claims_count_loeo_wins_and_pair_over_elements():
    from ecdflow.results_doc import claims

    rows = []
    for i, el in enumerate(["A", "B", "C", "D", "E", "F"]):
        for m, rmse in (("rf_magpie", 10.0 + i), ("cnn3d", 9.0 + i if i < 4 else 20.0),
                        ("fusion", 8.0 + i if i == 0 else 30.0),  # not in the paper's count
                        ("rf_magpie_volume", 1.0 if i < 5 else 40.0)):  # nor this one
            rows.append({"split_kind": "loeo", "target": "K_VRH", "model": m, "fold": el,
                         "rmse": rmse, "r2": 0.5})
    for k in (0, 1):  # two CV folds only: the paired test is refused
        for m, rmse in (("rf_magpie", 10.0), ("cnn3d", 12.0), ("fusion", 9.0)):
            rows.append({"split_kind": "cv", "target": "K_VRH", "model": m, "fold": str(k),
                         "rmse": rmse + k, "r2": 0.5})
    out = claims(pd.DataFrame(rows))
    assert out["magpie"] == ["K_VRH: best Magpie model rf_magpie vs best ECD model cnn3d, "
                             "per-fold CV RMSE: not enough folds (n = 2 < 5)"]
    assert "K_VRH: fusion vs rf_magpie: not enough folds (n = 2 < 5)" in out["fusion"]
    assert out["loeo"][0] == (
        "K_VRH: among the models the paper compared on held-out elements (rf_magpie, "
        "cnn_magpie, cnn3d, cnn2d_se; fusion was not), an ECD model has the lowest RMSE on 4 "
        "of 6 held-out elements (cnn3d 4, cnn2d_se 0; Magpie models 2)")
    assert out["loeo"][1] == ("K_VRH: with every model of this run competing, lowest LOEO "
                              "RMSE: rf_magpie 1, rf_magpie_volume 5 of 6 elements")
    assert "n = 6" in out["loeo"][2]


def test_results_page_from_the_demo_store(tmp_path, capfd, monkeypatch):
    import mlflow

    from ecdflow import tracking
    from ecdflow.results_doc import PAPER_LABEL, write_results

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    s = demo_settings(tmp_path)
    pid = make_pipeline_run(s)
    mlflow.MlflowClient().set_terminated(tracking.find_parent_run(s, pid), "FINISHED")
    readme = write_results(s, pid, tmp_path / "results")
    text = readme.read_text()
    assert f"pipeline run `{pid}`" in text and "MLflow parent run `" in text
    assert "MLflow parent run `none`" not in text
    assert f"K_VRH: {PAPER_LABEL}" in text and "0.943 / 18.721" in text
    assert "## Table 3" in text and "### LOEO test sets" in text
    assert "| target: source |" in text
    assert re.search(r"- fit rows: every model fitted on its whole training set, no "
                     r"validation split \(\d+(-\d+)? rows per run\)", text)
    assert "In progress" not in text and f"describes pipeline run `{pid}` only" in text
    # the demo run has no ECD or fusion model: those claims say so instead of a number
    assert text.count("- not measured in this run") == 3
    assert "(4) t-SNE shows why\n\n- K_VRH: not enough elements (n = 0 < 5)" in text
    assert "## Errors per material family (CV)" in text and "| full-heusler |" in text
    figs = list((tmp_path / "results" / "figures").glob("*.png"))
    assert {"tsne_magpie.png", "tsne_ecd.png", "loeo_r2_K_VRH.png"} <= {
        f.name for f in figs}
    assert figs and all(f"figures/{f.name}" in text for f in figs)
    assert "- [sanity checks](sanity.md)" in text and "beyond.md" not in text
    (tmp_path / "results" / "beyond.md").write_text("# Beyond\n")
    assert "- [beyond the paper](beyond.md)" in write_results(s, pid, tmp_path / "results"
                                                               ).read_text()
    # quiet: reading each run's predictions back draws no MLflow download progress bar
    assert "Downloading artifacts" not in capfd.readouterr().err


def test_partial_run_page_counts_finished_runs_against_the_plan(tmp_path, monkeypatch):
    """Parent run still RUNNING: the banner counts finished runs (4 of the demo's 6 planned
    here: the plan adds a second cnn_magpie repeat to each CV fold) and tasks (6 of 6 minus
    the 2 CV cnn_magpie tasks missing a repeat = 4 of 6); claims needing the missing runs
    say so instead of a verdict."""
    from ecdflow import results_analysis
    from ecdflow.results_doc import write_results

    s = demo_settings(tmp_path)
    pid = make_pipeline_run(s)
    make_pipeline_run(s, pid="pr-other")  # another run of the same profile: named, not used
    rows = [{"model": m, "target": "K_VRH", "split": sp, "split_kind": sp.split("-")[0],
             "fold": sp.split("-")[1], "repeat": r, "task": f"{m}-{sp}"}
            for m in ("rf_magpie", "cnn_magpie") for sp in ("cv-0", "cv-1", "loeo-Cl")
            for r in ((0, 1) if m == "cnn_magpie" and sp != "loeo-Cl" else (0,))]
    plan = pd.DataFrame(rows)
    monkeypatch.setattr(results_analysis, "planned_runs", lambda settings: plan)
    text = write_results(s, pid, tmp_path / "results").read_text()
    assert text.startswith("# Results\n\n**In progress: 6 of 8 planned training runs "
                           "finished** (parent run RUNNING")
    assert "4 of 6 training tasks with all their repeats" in text
    assert "| cv | K_VRH | cnn_magpie | 2 | 4 |" in text
    assert "`pr-other` (parent RUNNING)" in text
    # no ECD model is planned: claims (1) and (3)'s pairing are not measured, not "incomplete"
    assert "no verdict until they have" not in text
    assert ("fusion was not), an ECD model has the lowest RMSE on 0 of 1 held-out elements "
            "(cnn3d 0, cnn2d_se 0; Magpie models 1) (the 1 of 1 planned elements where every "
            "planned model has finished)") in text


def test_default_run_is_the_newest_of_the_selected_profile(tmp_path):
    import mlflow

    from ecdflow import tracking
    from ecdflow.errors import EcdflowError
    from ecdflow.evaluate import latest_pipeline_run_id

    s = demo_settings(tmp_path)
    exp = tracking.configure(s)
    client = mlflow.MlflowClient()
    for i, (pid, profile) in enumerate((("q-old", "quick"), ("q-new", "quick"),
                                        ("std-newest", "standard"))):
        client.create_run(exp, start_time=1_000_000 + i,
                          tags={tracking.TAG_ROLE: "parent", tracking.TAG_PROFILE: profile,
                                tracking.TAG_PIPELINE_RUN: pid})
    assert latest_pipeline_run_id(s, "quick") == "q-new"
    assert latest_pipeline_run_id(s, "standard") == "std-newest"
    assert latest_pipeline_run_id(s) == "std-newest"
    with pytest.raises(EcdflowError, match="no pipeline run of profile 'paper'"):
        latest_pipeline_run_id(s, "paper")


def test_planned_page_has_no_result_and_the_arithmetic(tmp_path):
    from ecdflow.config import load_settings
    from ecdflow.results_doc import write_planned

    s = load_settings(profile="standard")
    text = write_planned(s, tmp_path).read_text()
    assert "planned, not yet run" in text and "No results table is published" in text
    assert "## Table 2" not in text
    assert "x 40 = " in text and "224 training tasks" in text  # 7 models x 2 targets x 16 splits
