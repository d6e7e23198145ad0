"""Ship a registered version: the best model type of a pipeline run (the registry's choice,
``ecdflow.registry.register_best``) copied into ``ecdflow/pretrained/<name>/`` as it was
registered, so the shipped model is exactly the fold ensemble that run evaluated. Run by
``ecdflow pretrained export`` after the ``standard`` profile's run (issue 15).

What is written beside the MLflow model (same layout as ``ecdflow.pretrained.build``):

- ``artifacts/oof_predictions.json``: the members' CV test predictions (GPa) from the member
  runs' ``predictions.csv``, one row per material (``material_id``, ``fold`` = its split,
  ``y_true``, ``y_pred`` averaged over the split's repeats: the residuals the registry
  calibrated the interval on, ``ecdflow.uncertainty.mean_over_repeats``);
- ``card.json``: name, target, model type, inputs, members, data version, commit, the source
  (registered model, version, pipeline run, profile), CV metrics (mean ± std over the members,
  and pooled over materials after averaging repeats), interval coverage from the version's
  tags, the table's row count and md5, and the size;
- ``MODEL_CARD.md``: the version's own model card (its MLflow description) under a header
  naming the shipped model and its source.

The pyfunc's bundled copy of the ecdflow code (``code/``) is dropped: the shipped model runs
inside the installed ecdflow, never beside an older copy of the package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ecdflow.errors import EcdflowError
from ecdflow.pretrained import CARD_JSON, MODEL_CARD, OOF, PRETRAINED_DIR, Shipped, shipped
from ecdflow.schema import TARGET_UNIT
from ecdflow.uncertainty import mean_over_repeats


def find_version(settings, target: str, pipeline_run_id: str | None = None,
                 version: str | None = None):
    """The registered version to ship: ``version`` of the target's registered model, else
    the newest version registered by ``pipeline_run_id``.

    Raises:
        EcdflowError: no such version (one line naming what was looked for).
    """
    import mlflow

    from ecdflow import tracking

    tracking.configure(settings)
    name = settings.registry.model_names[target]
    client = mlflow.MlflowClient()
    if version:
        return client.get_model_version(name, str(version))
    found = [mv for mv in client.search_model_versions(f"name='{name}'")
             if mv.tags.get(tracking.TAG_PIPELINE_RUN) == pipeline_run_id]
    if not found:
        raise EcdflowError(f"no version of '{name}' was registered by pipeline run "
                           f"'{pipeline_run_id}' (run `ecdflow register` for it first)")
    return max(found, key=lambda mv: int(mv.version))


def member_predictions(run_ids: list[str]) -> pd.DataFrame:
    """The member runs' CV test predictions (GPa): material_id, fold (split), repeat, y_true,
    y_pred."""
    import mlflow

    from ecdflow import tracking

    frames = []
    for rid in run_ids:
        run = mlflow.MlflowClient().get_run(rid)
        path = mlflow.artifacts.download_artifacts(run_id=rid,
                                                   artifact_path=tracking.ARTIFACT_PREDICTIONS)
        df = pd.read_csv(path)
        frames.append(pd.DataFrame({
            "material_id": df.material_id.astype(str), "fold": run.data.tags[tracking.TAG_SPLIT],
            "repeat": int(run.data.tags.get(tracking.TAG_REPEAT, 0)),
            "y_true": df.y_true.astype(float), "y_pred": df.y_pred.astype(float)}))
    return pd.concat(frames, ignore_index=True)


def cv_facts(oof: pd.DataFrame) -> dict:
    """Mean ± std over members of MAE/RMSE/R2 (GPa) and the pooled metrics over materials
    (each material's prediction averaged over repeats), in ``pretrained.build.summary``'s
    layout; ``n_folds`` counts distinct splits (members = splits x repeats)."""
    from ecdflow.pretrained.build import summary
    from ecdflow.results import regression_metrics

    per = []
    for (fold, rep), g in oof.groupby(["fold", "repeat"]):
        m = regression_metrics(g.y_true.to_numpy(), g.y_pred.to_numpy())
        per.append({"fold": fold, "repeat": int(rep), "n_test": len(g),
                    "mae": m["test_mae_gpa"], "rmse": m["test_rmse_gpa"], "r2": m["test_r2"]})
    per_df = pd.DataFrame(per)
    return {**summary(per_df, mean_over_repeats(oof)), "n_folds": int(per_df.fold.nunique())}


def _strip_code(model_dir: Path) -> None:
    import yaml

    shutil.rmtree(model_dir / "code", ignore_errors=True)
    mlmodel = model_dir / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    meta.get("flavors", {}).get("python_function", {})["code"] = None
    mlmodel.write_text(yaml.safe_dump(meta, sort_keys=False))


def export_version(settings, target: str, pipeline_run_id: str | None = None,
                   version: str | None = None, out_dir: Path = PRETRAINED_DIR,
                   table: Path | None = None) -> Shipped:
    """Write the registered version of ``target`` (see :func:`find_version`) as the shipped
    model of that target, replacing the one shipped before; returns it.

    Raises:
        EcdflowError: no such version, or a version without member runs.
    """
    import mlflow

    from ecdflow import tracking
    from ecdflow.pretrained.build import dataset_name, dir_size, model_name
    from ecdflow.registry import TAG_MEMBERS

    mv = find_version(settings, target, pipeline_run_id, version)
    tags = mv.tags
    members = [r for r in tags.get(TAG_MEMBERS, "").split(",") if r]
    if not members:
        raise EcdflowError(f"version {mv.version} of '{mv.name}' names no member runs")
    table = Path(table or settings.path(settings.paths.materials))
    rows = sum(1 for line in table.read_text().splitlines() if line.strip())
    model_type = tags[tracking.TAG_MODEL]
    name = model_name(model_type, dataset_name(rows), target)
    oof = member_predictions(members)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}",
                                                       dst_path=tmp))
        _strip_code(src)
        per_material = mean_over_repeats(oof)
        (src / "artifacts" / OOF).write_text(json.dumps({
            "unit": TARGET_UNIT, "target": target,
            "what": "CV test predictions of this ensemble's members, averaged over the repeats "
                    "of each split (the residuals the interval is calibrated on)",
            **{c: per_material[c].round(4).tolist() if per_material[c].dtype.kind == "f"
               else per_material[c].tolist()
               for c in ("material_id", "fold", "y_true", "y_pred")}}))
        manifest = json.loads((src / "artifacts" / "manifest.json").read_text())
        for old in shipped(out_dir):
            if old.target == target:
                shutil.rmtree(old.path)
        dest = out_dir / name
        shutil.copytree(src, dest)
    card = {"name": name, "target": target, "unit": TARGET_UNIT, "model_type": model_type,
            "inputs": manifest.get("inputs", []), "n_members": len(members),
            "data": {"table": table.name, "rows": rows,
                     "rows_with_target": int(oof.material_id.nunique()),
                     "table_md5": hashlib.md5(table.read_bytes()).hexdigest()},
            "data_version": tags.get(tracking.TAG_DATA_VERSION, "?"),
            "git_commit": tags.get(tracking.TAG_GIT, "unknown"),
            "source": {"registered_model": mv.name, "version": str(mv.version),
                       "pipeline_run_id": tags.get(tracking.TAG_PIPELINE_RUN, ""),
                       "profile": tags.get(tracking.TAG_PROFILE, "")},
            "protocol": f"the registered fold ensemble of pipeline run "
                        f"{tags.get(tracking.TAG_PIPELINE_RUN, '?')} (profile "
                        f"{tags.get(tracking.TAG_PROFILE, '?')})",
            "cv": cv_facts(oof),
            "interval_tags": {k.removeprefix("ecdflow."): float(v) for k, v in tags.items()
                              if "coverage" in k or "interval_width" in k}}
    card["size_bytes"] = dir_size(dest)
    (dest / CARD_JSON).write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    cv = card["cv"]
    (dest / MODEL_CARD).write_text(
        f"# Model card: `{name}`\n\nShipped with ecdflow from version {mv.version} of "
        f"`{mv.name}`, registered by pipeline run `{card['source']['pipeline_run_id']}` "
        f"(profile `{card['source']['profile']}`); {len(members)} members, "
        f"{card['size_bytes'] / 1e6:.2f} MB. CV over the members: RMSE "
        f"{cv['rmse_mean']:.1f} ± {cv['rmse_std']:.1f} {TARGET_UNIT}, R2 "
        f"{cv['r2_mean']:.3f} ± {cv['r2_std']:.3f}; pooled (repeats averaged) RMSE "
        f"{cv['pooled_rmse']:.1f} {TARGET_UNIT}. Made by `ecdflow pretrained export`.\n\n"
        f"{mv.description or ''}".rstrip() + "\n")
    return next(s for s in shipped(out_dir) if s.name == name)
