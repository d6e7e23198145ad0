"""The registered fold ensemble carries a calibrated interval and a domain: coverage metrics
logged on the register run and the parent run, intervals around every served prediction, the
out-of-domain flag on an unseen element (tiny demo runs, real MLflow)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_pipeline_run, demo_rows  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from ecdflow import registry

    s, pid = demo_pipeline_run(tmp_path_factory.mktemp("uq"))
    mv = registry.register_best(s, pid, "K_VRH")
    return s, pid, mv


def _nested_cv_coverage(preds: pd.DataFrame, coverage: float) -> float:
    """Brute force, independent of ecdflow.uncertainty: for each fold, the
    ceil((n+1)(1-alpha))-th smallest |residual| of the other folds."""
    hits = []
    for split in preds.split.unique():
        held = preds[preds.split == split]
        cal = np.sort(np.abs((preds[preds.split != split].y_true
                              - preds[preds.split != split].y_pred).to_numpy()))
        k = math.ceil((len(cal) + 1) * coverage)
        q = cal[k - 1] if k <= len(cal) else math.inf
        hits += list(np.abs(held.y_true - held.y_pred) <= q)
    return float(np.mean(hits))


def test_coverage_metrics_logged_and_right(registered):
    import mlflow

    from ecdflow import tracking
    from ecdflow.evaluate import load_predictions

    s, pid, mv = registered
    client = mlflow.MlflowClient()
    reg = client.get_run(mv.run_id)
    m = reg.data.metrics
    assert {"coverage_90", "interval_width_90", "loeo_coverage_90", "loeo_interval_width_90",
            "loeo_coverage_90_Cl"} <= set(m)
    model = mv.tags[tracking.TAG_MODEL]
    preds = load_predictions(s, pid)
    cv = preds[(preds.model == model) & (preds.target == "K_VRH") & (preds.split_kind == "cv")]
    assert m["coverage_90"] == pytest.approx(_nested_cv_coverage(cv, 0.9))
    assert m["interval_width_90"] > 0 and 0 <= m["loeo_coverage_90"] <= 1
    parent = client.get_run(tracking.find_parent_run(s, pid)).data.metrics
    assert parent["coverage_90_K_VRH"] == m["coverage_90"]
    assert parent["loeo_coverage_90_K_VRH"] == m["loeo_coverage_90"]
    assert float(mv.tags["ecdflow.coverage_90"]) == pytest.approx(m["coverage_90"], rel=1e-5)


def test_served_interval_contains_prediction_and_flags_unseen_elements(registered):
    import mlflow

    from ecdflow.data.table import structure_of

    s, _, mv = registered
    model = mlflow.pyfunc.load_model(f"models:/test-bulk/{mv.version}")
    rows = demo_rows()[:6]
    unseen = {"Xe"} - {e for r in demo_rows() for e in r["elements"]}
    assert unseen  # the demo set has no xenon compound
    inputs = [json.dumps(structure_of(r).as_dict()) for r in rows] + ["XeF2", "NotAFormula"]
    df = model.predict(pd.DataFrame({"input": inputs}))
    good = df.iloc[:6]
    assert (good.error == "").all()
    assert all(lo < p < hi for lo, p, hi in zip(good.lower, good.prediction, good.upper,
                                                strict=True))
    assert (good.coverage == 0.9).all()
    # training materials are in domain (distance 0 to themselves, elements seen)
    assert all(v is False for v in good.out_of_domain) and (good.ood_reason == "").all()
    assert df.error[6] == "" and df.out_of_domain[6] is True
    assert df.ood_reason[6].startswith("element(s) Xe never seen in training")
    assert df.error[7] and all(df[c][7] is None for c in ("lower", "upper", "coverage",
                                                          "out_of_domain"))
    # the interval is symmetric, half width = the stored conformal quantile
    path = mlflow.artifacts.download_artifacts(f"models:/test-bulk/{mv.version}")
    manifest = json.loads((Path(path) / "artifacts" / "manifest.json").read_text())
    cal = json.loads((Path(path) / "artifacts" / "calibration.json").read_text())
    assert manifest["density_source"]["kind"] == "procrystal"
    assert manifest["density_source"]["smearing_A"] == s.density.smearing_A
    assert cal["coverage"] == 0.9 and cal["score"] == "abs"
    lo, p, hi = (good[c].to_numpy(float) for c in ("lower", "prediction", "upper"))
    assert np.allclose(hi - p, cal["q"]) and np.allclose(lo, np.maximum(p - cal["q"], 0.0))
    assert (lo >= 0).all()  # a modulus is positive: the lower end is clipped at 0 GPa
