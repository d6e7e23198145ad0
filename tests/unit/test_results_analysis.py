"""``ecdflow.results_analysis``: progress against the plan, per-family CV errors and the
claim-(4) neighbour statistic, on toy frames whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ecdflow.results_analysis import (
    dedupe_runs,
    extrapolation_claim,
    extrapolation_table,
    family_errors,
    missing_runs,
    neighbour_ratio,
    planned_runs,
    progress,
)


def _plan(models, folds=5, repeats=None):
    repeats = repeats or {}
    return pd.DataFrame([{"model": m, "target": "K_VRH", "split": f"cv-{k}", "split_kind": "cv",
                          "fold": str(k), "repeat": r, "task": f"{m}-cv-{k}"}
                         for m in models for k in range(folds) for r in range(repeats.get(m, 1))])


def _runs(rows):
    return pd.DataFrame([{"model": m, "target": "K_VRH", "split": f"cv-{k}", "split_kind": "cv",
                          "fold": str(k), "repeat": r, "rmse": rmse, "r2": 0.5,
                          "run_id": f"{m}{k}{r}{i}"}
                         for i, (m, k, r, rmse) in enumerate(rows)])


def test_progress_counts_runs_and_tasks_once():
    plan = _plan(["rf_magpie", "cnn3d"], folds=2, repeats={"cnn3d": 2})  # 2 + 4 runs, 4 tasks
    runs = dedupe_runs(_runs([("rf_magpie", 0, 0, 1.0), ("rf_magpie", 0, 0, 1.0),  # logged twice
                              ("cnn3d", 0, 0, 1.0), ("cnn3d", 0, 1, 1.0), ("cnn3d", 1, 0, 1.0),
                              ("fusion", 0, 0, 1.0)]))  # not planned: not counted
    pr = progress(plan, runs)
    assert (pr["runs_done"], pr["runs_planned"]) == (4, 6)
    assert (pr["tasks_done"], pr["tasks_planned"]) == (2, 4)  # rf cv-0, cnn3d cv-0
    t = pr["table"].set_index("model")
    assert t.loc["cnn3d", "finished"] == 3 and t.loc["cnn3d", "planned"] == 4
    assert t.loc["rf_magpie", "finished"] == 1 and "fusion" not in t.index


def test_planned_runs_of_the_standard_profile():
    from ecdflow.config import load_settings

    p = planned_runs(load_settings(profile="standard"))
    # 7 models (3 scikit-learn, 4 Keras) x 2 targets x (5 folds + 11 elements) tasks;
    # CV: Keras models 2 repeats; LOEO: 1 repeat
    assert p.task.nunique() == 7 * 2 * 16 == 224
    assert len(p) == 2 * (5 * (3 + 4 * 2) + 11 * 7)


def test_incomplete_pairs_say_so_instead_of_a_verdict():
    from ecdflow.results_doc import claims

    plan = _plan(["rf_magpie", "cnn3d", "fusion"])
    rows = [(m, k, 0, 10.0 + k + (m == "cnn3d") * (1 + 0.1 * k)) for m in ("rf_magpie", "cnn3d")
            for k in range(5)]
    rows += [("fusion", k, 0, 9.0) for k in range(3)]
    runs = _runs(rows)
    assert missing_runs(plan, runs, "cv", "K_VRH", ("rf_magpie", "cnn3d")) is None
    out = claims(runs, plan)
    assert out["magpie"][0].startswith("K_VRH: best Magpie model rf_magpie vs best ECD model "
                                       "cnn3d, per-fold CV RMSE: rf_magpie - cnn3d = -1.20 GPa "
                                       "mean RMSE over n = 5 folds, rf_magpie lower on 5 of 5")
    assert ("K_VRH: fusion vs rf_magpie: incomplete: fusion 3 of 5 planned runs finished; "
            "no verdict until they have") in out["fusion"]
    # without the plan (a finished run) the same 3 folds give the n < 5 refusal
    assert "K_VRH: fusion vs rf_magpie: not enough folds (n = 3 < 5)" in claims(runs)["fusion"]
    # a planned claim with no run yet: said, not "not measured"
    out = claims(runs, _plan(["rf_magpie", "cnn3d", "fusion", "rf_magpie_volume"]))
    assert out["volume"] == ["K_VRH: density models vs rf_magpie_volume: incomplete: fusion 3 "
                             "of 5, rf_magpie_volume 0 of 5 planned runs finished; no verdict "
                             "until they have"]


def _family_preds():
    rows = []
    truth = {"a1": 10.0, "a2": 20.0, "b1": 30.0}
    fold = {"a1": "0", "a2": "1", "b1": "1"}
    errors = {("m1", "0"): {"a1": 1.0, "a2": 3.0, "b1": 2.0},
              ("m1", "1"): {"a1": 0.0, "a2": 4.0, "b1": 0.0},
              ("m2", "0"): {"a1": 0.0, "a2": 1.0, "b1": 5.0}}
    for (m, r), err in errors.items():
        for mid, e in err.items():
            rows.append({"material_id": mid, "y_true": truth[mid], "y_pred": truth[mid] + e,
                         "model": m, "target": "K_VRH", "split_kind": "cv", "fold": fold[mid],
                         "repeat": r})
    return pd.DataFrame(rows), pd.Series({"a1": "A", "a2": "A", "b1": "B"})


def test_family_errors_pool_folds_per_repeat_then_average():
    preds, fam = _family_preds()
    t = family_errors(preds, fam, min_n=2).set_index("family")
    assert t.loc["A", "n"] == 2 and t.loc["B", "n"] == 1
    assert t.loc["A", "label mean (GPa)"] == 15.0
    assert t.loc["A", "label std (GPa)"] == pytest.approx(math.sqrt(50))
    # m1, family A: repeat 0 sqrt((1 + 9) / 2), repeat 1 sqrt((0 + 16) / 2); mean of the two
    assert t.loc["A", "m1"] == pytest.approx((math.sqrt(5) + math.sqrt(8)) / 2)
    assert t.loc["A", "m2"] == pytest.approx(math.sqrt(0.5))
    assert t.loc["B", "m1"] == pytest.approx(1.0) and t.loc["B", "m2"] == pytest.approx(5.0)
    assert t.loc["A", "best"] == "m2" and t.loc["B", "best"] == "m1"
    assert t.loc["A", "flag"] == "" and t.loc["B", "flag"] == "n < 2"


def test_family_errors_use_only_folds_every_model_has():
    preds, fam = _family_preds()
    preds = preds[(preds.model == "m1") | (preds.fold == "0")]  # m2 has fold 0 only
    t = family_errors(preds, fam, min_n=1).set_index("family")
    assert list(t.index) == ["A"] and t.loc["A", "n"] == 1  # a1 only
    assert t.loc["A", "m1"] == pytest.approx(0.5) and t.loc["A", "m2"] == 0.0


@pytest.mark.parametrize("spacing", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("gap", [0.0, 1.0, 2.5])
def test_neighbour_ratio_in_units_of_the_training_spacing(spacing, gap):
    train = np.arange(5) * spacing
    x = np.c_[np.r_[train, train[-1] + gap * spacing], np.zeros(6)]
    test = np.r_[np.zeros(5, bool), True]
    assert neighbour_ratio(x, test) == pytest.approx(gap)


def test_neighbour_ratio_refuses_empty_sides():
    x = np.arange(6.0).reshape(3, 2)
    assert math.isnan(neighbour_ratio(x, np.zeros(3, bool)))
    assert math.isnan(neighbour_ratio(x, np.array([True, True, False])))


def test_extrapolation_table_on_known_geometry():
    # 4 training materials 1 apart; the X material 2 away in Magpie space, 0.5 in density space
    elements = pd.Series([["A"], ["A"], ["B"], ["B"], ["X", "A"]])
    mag = np.c_[[0.0, 1.0, 2.0, 3.0, 5.0], np.zeros(5)]
    ecd = np.c_[[0.0, 1.0, 2.0, 3.0, 3.5], np.zeros(5)]
    rm = pd.DataFrame({"element": "X", "target": "K_VRH",
                       "model": ["rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se", "fusion"],
                       "rmse": [12.0, 11.0, 9.0, 10.0, 1.0]})
    t = extrapolation_table(elements, {"magpie": mag, "ecd": ecd}, rm)
    r = t.iloc[0]
    assert (r.element, r.n_test) == ("X", 1)
    assert r.ratio_magpie == pytest.approx(2.0) and r.ratio_ecd == pytest.approx(0.5)
    assert (r.rmse_best_ecd, r.rmse_best_magpie) == (9.0, 11.0)  # fusion is neither


def _claim_table(dx, dy):
    n = len(dx)
    return pd.DataFrame({"element": [f"E{i}" for i in range(n)], "target": "K_VRH",
                         "n_test": 10, "ratio_magpie": 1.0, "ratio_ecd": 1.0 + np.asarray(dx),
                         "rmse_best_ecd": 20.0 + np.asarray(dy), "rmse_best_magpie": 20.0})


def test_extrapolation_claim_spearman_known_value():
    # ranks 1 2 3 4 5 vs 1 2 3 5 4: sum d^2 = 2, rho = 1 - 6 * 2 / (5 * 24) = 0.9
    line = extrapolation_claim(_claim_table([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]), "K_VRH")
    assert "over n = 5 held-out elements, Spearman rho = +0.90" in line
    assert "in the direction the paper suggests" in line and "not a cause" in line
    line = extrapolation_claim(_claim_table([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]), "K_VRH")
    assert "rho = -1.00" in line and "opposite to the direction" in line


@pytest.mark.parametrize("n", [0, 1, 4])
def test_extrapolation_claim_not_enough_elements(n):
    line = extrapolation_claim(_claim_table(list(range(n)), list(range(n))), "K_VRH")
    assert line == (f"K_VRH: not enough elements (n = {n} < 5) for a rank correlation of "
                    "neighbour distance and error")


def test_family_markdown_marks_only_unflagged_families():
    from ecdflow.results_analysis import family_markdown

    preds, fam = _family_preds()
    t = family_markdown(family_errors(preds, fam, min_n=2)).set_index("family")
    assert t.loc["A", "m2"] == "**0.71**" and t.loc["A", "best"] == "m2"
    assert t.loc["B", "m1"] == "1.00" and t.loc["B", "best"] == "(m1)"
    assert t.loc["B", "label std (GPa)"] == "-"


@pytest.mark.parametrize("n", [40, 120])
def test_tsne_sample_spans_the_table_not_its_head(n):
    """The table is sorted by family: the t-SNE sample is drawn (seeded) from all of it."""
    import json

    from ecdflow.config import load_settings
    from ecdflow.evaluate import tsne_features

    s = load_settings(profile="quick", overrides={"density": {"grid": 8}})
    rows = [json.loads(line) for line in open(s.path(s.paths.materials))]
    head_families = {r["family"] for r in rows[:n]}
    mats, z = tsne_features(s, n)
    assert len(mats) == n and z["magpie"].shape == (n, 132) and z["ecd"].shape[0] == n
    assert len(set(mats.family)) > len(head_families)
    again, _ = tsne_features(s, n)
    assert list(again.material_id) == list(mats.material_id)  # seeded


@pytest.mark.parametrize("elements,shape", [([], (1, 1)),
                                             (["F", "K", "Rb", "Cs", "Na", "Cl", "In", "Br",
                                               "Li", "Sc", "Tl"], (3, 4))])
def test_tsne_panels_wrap_in_rows_of_four(tmp_path, elements, shape):
    """11 held-out elements make a 3 x 4 grid (one row of 11 panels was 44 inches wide)."""
    from PIL import Image

    from ecdflow.config import load_settings
    from ecdflow.evaluate import tsne_features, tsne_maps

    s = load_settings(profile="quick", overrides={"density": {"grid": 8}})
    feats = tsne_features(s, 30)
    paths = tsne_maps(s, elements, tmp_path, features=feats)
    w, h = Image.open(paths[0]).size
    rows, cols = shape
    assert w == pytest.approx(4 * cols * 90, rel=0.02) and h == pytest.approx(4 * rows * 90,
                                                                              rel=0.02)


@pytest.mark.parametrize("metric", ["r2", "rmse"])
def test_loeo_matrix_is_table_3_as_element_by_model(metric):
    """Repeats average; a model without a run on an element is NaN; CV runs and the other
    target are ignored."""
    from ecdflow.results_doc import loeo_matrix

    def row(kind, target, fold, model, v):
        return {"split_kind": kind, "target": target, "fold": fold, "model": model,
                "r2": v, "rmse": 10 * v}

    runs = pd.DataFrame([row("loeo", "K_VRH", "F", "rf_magpie", 0.5),
                         row("loeo", "K_VRH", "F", "cnn3d", 0.2),
                         row("loeo", "K_VRH", "F", "cnn3d", 0.6),
                         row("loeo", "K_VRH", "Cs", "rf_magpie", 0.9),
                         row("loeo", "G_VRH", "F", "rf_magpie", -5.0),
                         row("cv", "K_VRH", "0", "rf_magpie", -5.0)])
    m = loeo_matrix(runs, "K_VRH", metric)
    scale = 1 if metric == "r2" else 10
    assert m.loc["F", "rf_magpie"] == pytest.approx(0.5 * scale)
    assert m.loc["F", "cnn3d"] == pytest.approx(0.4 * scale)
    assert m.loc["Cs", "rf_magpie"] == pytest.approx(0.9 * scale)
    assert math.isnan(m.loc["Cs", "cnn3d"])
    assert loeo_matrix(runs, "no-such-target").empty
