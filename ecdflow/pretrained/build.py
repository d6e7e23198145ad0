"""Build the shipped pretrained models: seeded 5-fold CV on the committed table, the fold
models saved as the served pyfunc (MLflow model format) with the registry's interval
calibration and applicability domain (``ecdflow.registry.uncertainty_record``), the out-of-fold
predictions and a model card. Run by ``ecdflow pretrained build`` (or
``python -m ecdflow.pretrained.build``).

Protocol (the pipeline's, written once in ``ecdflow.splits.make_splits``): KFold(5, shuffle,
``settings.seed``) over the sorted material ids; each fold's model is fitted on the other four
folds with seed ``settings.seed`` and scored on its own; the shipped model is the 5-member
fold ensemble (no refit on all data), exactly what was scored, as ``ecdflow register`` does.
Metrics: ``ecdflow.results.regression_metrics`` per fold (GPa), mean and std over folds, and
pooled over the out-of-fold predictions. Interval coverage and width:
``ecdflow.uncertainty.coverage_table`` (nested over the CV folds, and on leave-one-element-out
test sets of ``loeo_elements``, one extra forest each).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.config import PAPER_LOEO_ELEMENTS
from ecdflow.log import get_logger
from ecdflow.pretrained import CARD_JSON, MODEL_CARD, OOF, PRETRAINED_DIR
from ecdflow.schema import GRID_PARAM, INPUT_MAGPIE, INPUT_VOLUME, TARGET_UNIT, TARGETS
from ecdflow.uncertainty import DEFAULT_COVERAGE

log = get_logger(__name__)

MODEL_TYPE = "rf_magpie_volume"
N_FOLDS = 5
SHIPPED_PARAMS = {"n_estimators": 50, "min_samples_leaf": 5, "max_depth": 12, "n_jobs": 2}
"""Hyper-parameters of the shipped forests: rf_magpie's 50 trees, leaves and depth limited so
the ten fold models stay a few MB (docs: MODEL_CARD.md states size and metrics)."""


def dataset_name(n_rows: int) -> str:
    """``fcc<rows>``: the dataset part of a shipped model's name."""
    return f"fcc{n_rows}"


def model_name(model: str, dataset: str, target: str) -> str:
    """``ecdflow-<model>-<dataset>-<target>``, e.g. ``ecdflow-rf_magpie_volume-fcc1972-K_VRH``."""
    return f"ecdflow-{model}-{dataset}-{target}"


def load_table(path: Path) -> pd.DataFrame:
    """The committed table with the tabular inputs: material_id, formula, elements, K_VRH,
    G_VRH (GPa), magpie (132,), volume_per_atom (Å^3/atom). Rows the table checks refuse,
    or whose Magpie features are not finite, are dropped (counted in the log)."""
    from ecdflow.data.table import load_materials, structure_of
    from ecdflow.features import featurize, volume_per_atom

    df, quarantine = load_materials(path)
    x, errors = featurize(list(df["formula"]))
    keep = [i for i, e in enumerate(errors) if not e]
    if len(keep) < len(df):
        log.warning("%d rows without Magpie features dropped", len(df) - len(keep))
    df = df.iloc[keep].reset_index(drop=True)
    df[INPUT_MAGPIE] = list(x[keep])
    df[INPUT_VOLUME] = [volume_per_atom(structure_of(r)) for _, r in df.iterrows()]
    return df


def feature_matrix(df: pd.DataFrame, inputs: tuple[str, ...]) -> np.ndarray:
    """(n, 132 [+1]) float32 in ``schema.TABULAR_INPUTS`` order (the served model's order)."""
    from ecdflow.features import tabular_matrix

    arrays = {INPUT_MAGPIE: np.stack(df[INPUT_MAGPIE].to_numpy()),
              INPUT_VOLUME: df[INPUT_VOLUME].to_numpy(np.float32)}
    return tabular_matrix(arrays, inputs).astype(np.float32)


def cross_validate(df: pd.DataFrame, target: str, model: str, params: dict, seed: int
                   ) -> tuple[list, pd.DataFrame, pd.DataFrame]:
    """Fit one model per CV fold and predict its held-out fold.

    Returns:
        (fold models, per-fold metrics [fold, n_test, mae, rmse, r2], out-of-fold frame
        [material_id, formula, fold, y_true, y_pred] in GPa).
    """
    from ecdflow.models import get_spec
    from ecdflow.results import regression_metrics
    from ecdflow.splits import make_splits

    spec = get_spec(model)
    cfg = spec.config(params)
    splits = make_splits(df[["material_id", "elements"]], N_FOLDS, [], seed)
    pos = {m: i for i, m in enumerate(df["material_id"].astype(str))}
    x = feature_matrix(df, spec.inputs)
    y = df[target].to_numpy(float)
    members, folds, oof = [], [], []
    for k in range(N_FOLDS):
        tr = [pos[m] for m in splits[f"cv-{k}"]["train"]]
        te = [pos[m] for m in splits[f"cv-{k}"]["test"]]
        est = spec.build(cfg, seed=seed).fit(x[tr], y[tr])
        pred = est.predict(x[te])
        m = regression_metrics(y[te], pred)
        folds.append({"fold": k, "n_test": len(te), "mae": m["test_mae_gpa"],
                      "rmse": m["test_rmse_gpa"], "r2": m["test_r2"]})
        oof.append(pd.DataFrame({"material_id": df["material_id"].iloc[te].to_numpy(),
                                 "formula": df["formula"].iloc[te].to_numpy(), "fold": k,
                                 "y_true": y[te], "y_pred": pred}))
        members.append(est)
    return members, pd.DataFrame(folds), pd.concat(oof, ignore_index=True)


def loeo_predictions(df: pd.DataFrame, target: str, model: str, params: dict, seed: int,
                     elements: list[str]) -> pd.DataFrame:
    """Leave-one-element-out test predictions: per element of ``elements`` present in ``df``,
    one model fitted (seed ``seed``) on the materials without it, predicting those with it.

    Returns:
        [material_id, split (``loeo-<El>``), y_true, y_pred] in GPa.
    """
    from ecdflow.models import get_spec
    from ecdflow.splits import make_splits

    spec = get_spec(model)
    cfg = spec.config(params)
    splits = make_splits(df[["material_id", "elements"]], N_FOLDS, list(elements), seed)
    pos = {m: i for i, m in enumerate(df["material_id"].astype(str))}
    x = feature_matrix(df, spec.inputs)
    y = df[target].to_numpy(float)
    out = []
    for name, sp in splits.items():
        if not name.startswith("loeo-"):
            continue
        tr = [pos[m] for m in sp["train"]]
        te = [pos[m] for m in sp["test"]]
        est = spec.build(cfg, seed=seed).fit(x[tr], y[tr])
        out.append(pd.DataFrame({"material_id": df["material_id"].iloc[te].to_numpy(),
                                 "split": name, "y_true": y[te], "y_pred": est.predict(x[te])}))
    return (pd.concat(out, ignore_index=True) if out
            else pd.DataFrame(columns=["material_id", "split", "y_true", "y_pred"]))


def interval_facts(oof: pd.DataFrame, loeo: pd.DataFrame, target: str, calibration: dict
                   ) -> dict:
    """Measured coverage and mean width (GPa) of the shipped interval
    (``ecdflow.uncertainty.coverage_table``: nested over the CV folds; on each LOEO test set
    and pooled, calibrated on all CV residuals), with the LOEO RMSE (GPa) beside it."""
    from ecdflow.results import regression_metrics
    from ecdflow.uncertainty import coverage_table

    preds = pd.concat([
        oof.assign(model=MODEL_TYPE, target=target, split_kind="cv",
                   split=oof["fold"].map(lambda k: f"cv-{k}")),
        loeo.assign(model=MODEL_TYPE, target=target, split_kind="loeo", fold=0)],
        ignore_index=True)
    table = coverage_table(preds, calibration["coverage"], {MODEL_TYPE: calibration["score"]})
    r = lambda v: round(float(v), 4)  # noqa: E731
    out = {"nominal": calibration["coverage"], "score": calibration["score"],
           "q_gpa": r(calibration["q"]), "n_calibration": calibration["n"],
           "per_loeo": {}}
    for row in table.itertuples():
        if row.test_set == "cv":
            out.update(cv_coverage=r(row.coverage), cv_width_gpa=r(row.width_gpa), cv_n=row.n)
        elif row.test_set == "loeo":
            out.update(loeo_coverage=r(row.coverage), loeo_width_gpa=r(row.width_gpa),
                       loeo_n=row.n)
        else:
            d = loeo[loeo.split == row.test_set]
            out["per_loeo"][row.test_set.removeprefix("loeo-")] = {
                "n": row.n, "coverage": r(row.coverage),
                "rmse_gpa": r(regression_metrics(d.y_true.to_numpy(float),
                                                 d.y_pred.to_numpy(float))["test_rmse_gpa"])}
    if len(loeo):
        out["loeo_rmse_gpa"] = r(regression_metrics(loeo.y_true.to_numpy(float),
                                                    loeo.y_pred.to_numpy(float))["test_rmse_gpa"])
    return out


def summary(folds: pd.DataFrame, oof: pd.DataFrame) -> dict:
    """Mean and std over folds of mae/rmse/r2 (GPa) and the pooled out-of-fold metrics."""
    from ecdflow.results import regression_metrics

    pooled = regression_metrics(oof["y_true"].to_numpy(), oof["y_pred"].to_numpy())
    # rounded to 1e-6: the forests' threaded predict sums trees in varying order (last bits)
    out = {f"{m}_{s}": round(float(getattr(folds[m], s)(ddof=1) if s == "std"
                                   else folds[m].mean()), 6)
           for m in ("mae", "rmse", "r2") for s in ("mean", "std")}
    out.update(pooled_mae=round(pooled["test_mae_gpa"], 6),
               pooled_rmse=round(pooled["test_rmse_gpa"], 6),
               pooled_r2=round(pooled["test_r2"], 6), n_folds=len(folds),
               per_fold=folds.round(4).to_dict(orient="records"))
    return out


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    h.update(path.read_bytes())
    return h.hexdigest()


def save_model(dest: Path, members: list, manifest: dict, oof: pd.DataFrame, uq: dict) -> None:
    """Write the served pyfunc (ModulusEnsemble) to ``dest`` with skops members, the manifest,
    the interval calibration and domain ``uq`` (``ecdflow.registry.uncertainty_record``, saved
    by ``registry.save_uncertainty``: artifacts ``calibration``, ``domain``) and
    ``oof_predictions.json`` (out-of-fold predictions, GPa) as artifacts."""
    import mlflow.pyfunc

    from ecdflow.ensemble import save_skops, skops_requirement
    from ecdflow.registry import UQ_ARTIFACTS, pip_requirements, save_uncertainty
    from ecdflow.serve import ModulusEnsemble, signature

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        artifacts = {}
        for i, est in enumerate(members):
            p = t / f"member_{i}.skops"
            save_skops(est, p)
            artifacts[f"member_{i}"] = str(p)
        manifest = {**manifest, **{k: k for k in UQ_ARTIFACTS}}
        (t / "manifest.json").write_text(json.dumps(manifest, indent=1))
        artifacts["manifest"] = str(t / "manifest.json")
        cal = {"unit": TARGET_UNIT, "target": manifest["target"],
               "what": "5-fold CV out-of-fold predictions of this ensemble's members "
                       "(member k predicted fold k); residual = y_true - y_pred",
               **{c: oof[c].round(4).tolist() if oof[c].dtype.kind == "f" else oof[c].tolist()
                  for c in ("material_id", "fold", "y_true", "y_pred")}}
        (t / OOF).write_text(json.dumps(cal))
        artifacts["oof_predictions"] = str(t / OOF)
        artifacts.update(save_uncertainty(uq, t))
        if dest.exists():
            shutil.rmtree(dest)
        mlflow.pyfunc.save_model(
            str(dest), python_model=ModulusEnsemble(), artifacts=artifacts,
            pip_requirements=[*pip_requirements(), skops_requirement()],
            signature=signature())


def _commit(head: str) -> str:
    """HEAD, with ``+dirty`` when ecdflow/ has uncommitted changes (the card must not claim
    a commit whose code differs from what built it)."""
    import subprocess

    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "ecdflow/models",
                              "ecdflow/pretrained/build.py", "ecdflow/serve.py",
                              "ecdflow/serve_input.py", "ecdflow/ensemble.py",
                              "ecdflow/features.py", "ecdflow/splits.py"],
                             cwd=PRETRAINED_DIR, capture_output=True, text=True, timeout=10)
        return head + ("+dirty" if out.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return head


def dir_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(table: Path, out_dir: Path = PRETRAINED_DIR, seed: int = 42,
          targets: tuple[str, ...] = TARGETS, compare: tuple[str, ...] = ("rf_magpie",),
          coverage: float = DEFAULT_COVERAGE,
          loeo_elements: tuple[str, ...] = tuple(PAPER_LOEO_ELEMENTS)) -> list[dict]:
    """Build one shipped model per target and return their card facts.

    Args:
        table: the materials table (``data/fcc/materials.jsonl``).
        out_dir: where ``<name>/`` directories are written.
        seed: the folds' and forests' seed (``settings.seed``; the pipeline uses the same).
        compare: other model types measured on the same folds and reported in the card.
        coverage: nominal coverage of the served interval (``registry.interval_coverage``).
        loeo_elements: elements whose leave-one-element-out coverage the card reports (one
            extra forest each; empty: none).
    """
    from ecdflow import tracking
    from ecdflow.pretrained.card import render_card
    from ecdflow.registry import uncertainty_record

    df = load_table(table)
    data = {"table": str(table.name), "rows": len(df),
            "table_md5": _file_digest(table, "md5"),
            "table_sha256": _file_digest(table, "sha256")}
    data_version = f"md5:{data['table_md5']}"
    cards = []
    for target in targets:
        sub = df.dropna(subset=[target]).reset_index(drop=True)
        members, folds, oof = cross_validate(sub, target, MODEL_TYPE, SHIPPED_PARAMS, seed)
        others = {}
        for other in compare:
            _, f2, o2 = cross_validate(sub, target, other, {}, seed)
            others[other] = summary(f2, o2)
        name = model_name(MODEL_TYPE, dataset_name(len(df)), target)
        from ecdflow.models import get_spec

        manifest = {"target": target, "model_type": MODEL_TYPE,
                    "inputs": list(get_spec(MODEL_TYPE).inputs), GRID_PARAM: 0,
                    "smearing_A": 0.0, "log_target": False, "name": name,
                    "members": [f"member_{i}" for i in range(len(members))]}
        # y_pred to 1e-6 GPa: threaded forest predict sums trees in varying order (last bits)
        uq = uncertainty_record(oof.round({"y_pred": 6}), list(sub["formula"]),
                                {e for els in sub["elements"] for e in els}, coverage, "abs")
        loeo = loeo_predictions(sub, target, MODEL_TYPE, SHIPPED_PARAMS, seed, loeo_elements)
        dest = out_dir / name
        save_model(dest, members, manifest, oof, uq)
        card = {"name": name, "target": target, "unit": TARGET_UNIT, "model_type": MODEL_TYPE,
                "inputs": manifest["inputs"], "params": SHIPPED_PARAMS, "seed": seed,
                "n_members": len(members), "member_folds": list(range(len(members))),
                "data": {**data, "rows_with_target": len(sub)},
                "data_version": data_version, "git_commit": _commit(tracking.git_commit()),
                "protocol": f"{N_FOLDS}-fold CV, KFold(shuffle=True, random_state={seed}) over "
                            "sorted material ids (ecdflow.splits.make_splits)",
                "cv": summary(folds, oof), "compare": others,
                "interval": interval_facts(oof, loeo, target, uq["calibration"]),
                "domain": {"n_train": len(sub), "n_elements": len(uq["domain"].elements),
                           "threshold": round(uq["domain"].threshold, 4),
                           "percentile": uq["domain"].percentile},
                "label_std": float(sub[target].std(ddof=1))}
        (dest / CARD_JSON).write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
        (dest / MODEL_CARD).write_text(render_card(card))
        card["size_bytes"] = dir_size(dest)
        (dest / CARD_JSON).write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
        (dest / MODEL_CARD).write_text(render_card(card))
        log.info("%s: CV RMSE %.1f GPa, R2 %.3f, %.1f MB", name, card["cv"]["rmse_mean"],
                 card["cv"]["r2_mean"], card["size_bytes"] / 1e6)
        cards.append(card)
    return cards


def main() -> None:
    """``python -m ecdflow.pretrained.build [TABLE]``: rebuild the shipped models."""
    import sys

    table = Path(sys.argv[1] if len(sys.argv) > 1 else "data/fcc/materials.jsonl")
    for c in build(table):
        print(f"{c['name']}: RMSE {c['cv']['rmse_mean']:.1f} GPa, R2 {c['cv']['r2_mean']:.3f}, "
              f"{c['size_bytes'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
