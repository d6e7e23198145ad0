"""A tiny but real pipeline run in a tmp MLflow store, for the registry/evaluate/serve tests.

Two model types are trained on Magpie features of 48 committed materials with 2 CV folds and
one LOEO split: ``rf_magpie`` (a real 8-tree random forest, the baseline) and a stand-in for
``cnn_magpie`` (a k-nearest-neighbours regressor, tagged cnn_magpie so the registry sees two
model types). Every run follows ecdflow's tracking conventions (tags, GPa metrics,
predictions.csv, model logged as ``model``), so the library treats it as a training run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow import tracking
from ecdflow.config import REPO_ROOT, Settings, load_settings
from ecdflow.schema import RunKey

N_MATERIALS = 48
DATA_VERSION = "test-data-v1"


def demo_settings(tmp: Path, **registry) -> Settings:
    """Settings whose stores all live under ``tmp`` (grid 8 keeps ECDs cheap)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    over = {
        "paths": {"work_dir": str(tmp / "work"), "reports_dir": str(tmp / "reports"),
                  "materials": str(tmp / "materials.jsonl")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "art")},
        "density": {"grid": 8},
        "registry": {"model_names": {"K_VRH": "test-bulk", "G_VRH": "test-shear"}, **registry},
        "targets": ["K_VRH"],
    }
    return load_settings(profile="quick", overrides=over)


def demo_rows(n: int = N_MATERIALS) -> list[dict]:
    """``n - 1`` committed materials with sane moduli, excluding fcc elements (so the external
    references stay unseen), plus Cu (seen: tests the de-duplication).

    Deterministic and spread over the table: four Cs compounds first (the quick profile's
    leave-one-element-out split needs a test set), then the families in turn (round robin
    over each family's rows in id order)."""
    rows = [json.loads(ln) for ln in (REPO_ROOT / "data/fcc/materials.jsonl").read_text()
            .splitlines() if ln.strip()]
    sane = [r for r in rows if 0 < r["K_VRH"] < 600 and 0 < r["G_VRH"] < 600
            and r["family"] != "fcc-element"]
    keep = [r for r in sane if "Cs" in r["elements"]][:4]
    families: dict[str, list[dict]] = {}
    for r in sane:
        if r not in keep:
            families.setdefault(r["family"], []).append(r)
    queues = [families[f] for f in sorted(families)]
    while len(keep) < n - 1 and any(queues):
        for q in queues:
            if q and len(keep) < n - 1:
                keep.append(q.pop(0))
    return keep + [_copper_row()]


def _copper_row() -> dict:
    """Cu as a training row, from the labeller's own dcdft check (the committed table holds
    the dcdft metals out, so the external check has something unseen to score)."""
    lab = next(json.loads(ln) for ln in
               (REPO_ROOT / "data/fcc/labels/dcdft-check.jsonl").read_text().splitlines()
               if json.loads(ln)["material_id"] == "dcdft:Cu")
    return {"material_id": "fcc-element:Cu", "formula": "Cu", "family": "fcc-element",
            "elements": ["Cu"], **{k: lab[k] for k in ("cell", "numbers", "positions", "C11",
                                                       "C12", "C44", "K_VRH", "G_VRH")}}


def _log_run(settings, parent, pid, model_name, target, split, kind, fold, est, x, y, rows,
             test_idx):
    import mlflow

    from ecdflow.plots import parity_plot

    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    est.fit(x[train_idx], y[train_idx])
    pred = est.predict(x[test_idx])
    err = pred - y[test_idx]
    ss = np.sum((y[test_idx] - y[test_idx].mean()) ** 2)
    tags = {**tracking.base_tags(settings, pid), tracking.TAG_ROLE: "train",
            tracking.TAG_MODEL: model_name, tracking.TAG_TARGET: target,
            tracking.TAG_SPLIT: split, tracking.TAG_SPLIT_KIND: kind, tracking.TAG_FOLD: fold,
            tracking.TAG_REPEAT: "0", tracking.TAG_DATA_VERSION: DATA_VERSION}
    name = tracking.run_label(RunKey(model_name, target, split))
    with tracking.child_run(settings, parent, name, tags):
        mlflow.log_params({"log_target": False, "grid": settings.density.grid,
                           "n_train": len(train_idx), "n_val": 0,  # fitted on every
                           "n_test": len(test_idx)})  # training row: no validation split
        mlflow.log_metrics({tracking.METRIC_RMSE: float(np.sqrt(np.mean(err**2))),
                            tracking.METRIC_MAE: float(np.mean(np.abs(err))),
                            tracking.METRIC_R2: float(1 - np.sum(err**2) / ss)})
        for epoch, loss in enumerate([3.0, 2.0, 1.5]):
            mlflow.log_metrics({"loss": loss, "val_loss": loss * 1.2}, step=epoch)
        df = pd.DataFrame({
            "material_id": [rows[i]["material_id"] for i in test_idx],
            "formula": [rows[i]["formula"] for i in test_idx],
            "elements": [" ".join(rows[i]["elements"]) for i in test_idx],
            "y_true": y[test_idx], "y_pred": pred})
        tmp = settings.work_dir / "tmp-preds"
        tmp.mkdir(parents=True, exist_ok=True)
        df.to_csv(tmp / tracking.ARTIFACT_PREDICTIONS, index=False)
        mlflow.log_artifact(str(tmp / tracking.ARTIFACT_PREDICTIONS))
        parity_plot(y[test_idx], pred, tmp / tracking.ARTIFACT_PARITY)
        mlflow.log_artifact(str(tmp / tracking.ARTIFACT_PARITY))
        mlflow.sklearn.log_model(est, name=tracking.MODEL_NAME, serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn"])


def make_pipeline_run(settings: Settings, pid: str = "pr-test-1", seed: int = 0,
                      targets: tuple[str, ...] = ("K_VRH",)) -> str:
    """Create the parent run and training runs of a tiny pipeline run; returns ``pid``."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor

    from ecdflow.features import featurize

    rows = demo_rows()
    # the one check (features.featurize): a row without finite features is left out, counted
    x, errors = featurize([r["formula"] for r in rows], where=[r["material_id"] for r in rows])
    if any(errors):
        print(f"demo run: {sum(map(bool, errors))} of {len(rows)} materials left out "
              f"(first: {next(e for e in errors if e)})")
    rows = [r for r, e in zip(rows, errors, strict=True) if not e]
    x = x[[not e for e in errors]]
    Path(settings.paths.materials).write_text("".join(json.dumps(r) + "\n" for r in rows))
    parent = tracking.start_parent_run(settings, pid)
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(rows)), 2)
    loeo = np.array([i for i, r in enumerate(rows) if "Cl" in r["elements"]])
    ids = np.array([r["material_id"] for r in rows])
    splits = {f"cv-{k}": {"train": sorted(np.delete(ids, f)), "test": sorted(ids[f])}
              for k, f in enumerate(folds)}
    splits["loeo-Cl"] = {"train": sorted(np.delete(ids, loeo)), "test": sorted(ids[loeo])}
    splits_path = settings.work_dir / tracking.ARTIFACT_SPLITS
    splits_path.parent.mkdir(parents=True, exist_ok=True)
    splits_path.write_text(json.dumps({k: {p: [str(m) for m in v[p]] for p in v}
                                       for k, v in splits.items()}))
    import mlflow

    mlflow.MlflowClient().log_artifact(parent, str(splits_path))
    for target in targets:
        y = np.array([r[target] for r in rows], float)
        for name, make in (("rf_magpie", lambda: RandomForestRegressor(8, random_state=seed)),
                           ("cnn_magpie", lambda: KNeighborsRegressor(3))):
            for k, test_idx in enumerate(folds):
                _log_run(settings, parent, pid, name, target, f"cv-{k}", "cv", str(k), make(),
                         x, y, rows, np.sort(test_idx))
            _log_run(settings, parent, pid, name, target, "loeo-Cl", "loeo", "Cl", make(), x, y,
                     rows, loeo)
    return pid


def demo_pipeline_run(tmp: Path) -> tuple[Settings, str]:
    """``demo_settings(tmp)`` and the id of a pipeline run made in them (``make_pipeline_run``),
    for module-scoped fixtures."""
    settings = demo_settings(tmp)
    return settings, make_pipeline_run(settings)
