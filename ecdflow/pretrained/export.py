"""Ship a registered version: the best model type of a pipeline run (the registry's choice,
``ecdflow.registry.register_best``) copied into ``ecdflow/pretrained/<name>/`` as it was
registered, so the shipped model is exactly the fold ensemble that run evaluated. Run by
``ecdflow pretrained export`` after the ``standard`` profile's run (issue 15).

What is written beside the MLflow model (same layout as ``ecdflow.pretrained.build``):

- ``artifacts/oof_predictions.json`` (pyfunc artifact ``oof_predictions``): the members' CV
  test predictions (GPa) from the member runs' ``predictions.csv``, one row per material
  (``material_id``, ``fold`` = its CV fold index, ``y_true``, ``y_pred`` averaged over the
  fold's repeats: the residuals the registry calibrated the interval on,
  ``ecdflow.uncertainty.mean_over_repeats``);
- ``card.json``: name, target, model type, inputs, members (``member_folds``: the CV fold of
  each ``member_<i>``; ``member_runs``), data version, commit (the registering code's; the
  members' training commits under ``source``), the source (registered model, version,
  pipeline run, profile), CV metrics (mean ± std over the members, and pooled over materials
  after averaging repeats), ``interval`` (the builder's layout: the calibration's q and the
  coverage measured nested over the CV folds and on the run's LOEO test sets,
  ``ecdflow.pretrained.build.interval_facts``), ``domain``, the version's interval tags, the
  table's row count and md5, and the size;
- ``MODEL_CARD.md``: the version's own model card (its MLflow description) under a header
  naming the shipped model and its source.

Only the packaging changes, with one exception: the pyfunc's bundled copy of the ecdflow
code (``code/``) is dropped (the shipped model runs inside the installed ecdflow, never beside
an older copy of the package) and so are the store paths in ``MLmodel``; scikit-learn members
(joblib in the registry) are rewritten as LZMA-compressed skops files (``member_<i>.skops``,
``ecdflow.ensemble.save_skops``: no pickle in the package, a few MB per model), each checked
to hold the same fitted state (``ecdflow.ensemble.same_state``) and to predict as before. The
exception: a density model's manifest gets the members' density storage dtype (``ecd_dtype``,
``ecdflow.registry.ecd_dtype``) when its version predates that key, which changes its
predictions on purpose: the shipped model then sees densities as its members were trained
and scored on (``ecdflow.records.as_stored``; the card lists it under ``manifest_added``).
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
from ecdflow.schema import ECD_DTYPE_PARAM, INPUT_ECD, TARGET_UNIT
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


def member_fold(run) -> int:
    """The CV fold index a member run was scored on (tag ``ecdflow.fold``, else its split
    ``cv-<k>``)."""
    from ecdflow import tracking

    tags = run.data.tags
    return int(tags.get(tracking.TAG_FOLD) or tags[tracking.TAG_SPLIT].removeprefix("cv-"))


def member_predictions(run_ids: list[str]) -> pd.DataFrame:
    """The member runs' CV test predictions (GPa): material_id, fold (CV fold index), repeat,
    y_true, y_pred."""
    import mlflow

    from ecdflow import tracking

    frames = []
    for rid in run_ids:
        run = mlflow.MlflowClient().get_run(rid)
        path = mlflow.artifacts.download_artifacts(run_id=rid,
                                                   artifact_path=tracking.ARTIFACT_PREDICTIONS)
        df = pd.read_csv(path)
        frames.append(pd.DataFrame({
            "material_id": df.material_id.astype(str), "fold": member_fold(run),
            "repeat": int(run.data.tags.get(tracking.TAG_REPEAT, 0)),
            "y_true": df.y_true.astype(float), "y_pred": df.y_pred.astype(float)}))
    return pd.concat(frames, ignore_index=True)


def loeo_predictions(settings, pipeline_run_id: str, model: str, target: str) -> pd.DataFrame:
    """The pipeline run's leave-one-element-out test predictions of ``model``/``target``
    (GPa), repeats averaged as the registry's calibration reads them: material_id, split
    (``loeo-<El>``), y_true, y_pred; empty when the run has none."""
    from ecdflow.evaluate import load_predictions

    cols = ["material_id", "split", "y_true", "y_pred"]
    preds = load_predictions(settings, pipeline_run_id)
    if preds.empty:
        return pd.DataFrame(columns=cols)
    sub = preds[(preds.model == model) & (preds.target == target)
                & (preds.split_kind == "loeo")]
    return mean_over_repeats(sub)[cols].reset_index(drop=True) if len(sub) else \
        pd.DataFrame(columns=cols)


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


def _same_model(a, b) -> bool:
    """Whether two scikit-learn estimators are the same model: the same fitted state
    (``ecdflow.ensemble.same_state``: every tree node and leaf) and identical predictions on
    a seeded probe batch."""
    import numpy as np

    from ecdflow.ensemble import same_state

    x = np.random.default_rng(0).normal(size=(16, int(a.n_features_in_)))
    return same_state(a, b) and bool(np.array_equal(a.predict(x), b.predict(x)))


def _repackage(model_dir: Path, manifest: dict, oof_name: str) -> None:
    """Repackage a downloaded registered version in place (predictions unchanged): drop
    ``code/``, the registry's ``registered_model_meta`` and the store paths of ``MLmodel``;
    members become ``artifacts/member_<i>`` (scikit-learn: LZMA skops, checked to be the
    same model as the registered file, ``_same_model``; Keras: renamed); ``oof_name`` is
    added as pyfunc artifact ``oof_predictions``.

    Raises:
        EcdflowError: a rewritten member predicts differently from the registered one.
    """
    import yaml

    from ecdflow.ensemble import load_member, save_skops, skops_requirement

    shutil.rmtree(model_dir / "code", ignore_errors=True)
    (model_dir / "registered_model_meta").unlink(missing_ok=True)
    mlmodel = model_dir / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    for key in ("artifact_path", "model_size_bytes"):  # a store path; the size before repacking
        meta.pop(key, None)
    pyfunc = meta["flavors"]["python_function"]
    pyfunc["code"] = None
    arts = pyfunc["artifacts"]
    skopsed = False
    for i, key in enumerate(manifest["members"]):
        old = model_dir / arts[key]["path"]
        if old.suffix in (".keras", ".skops"):
            new = old.with_name(f"member_{i}{old.suffix}")
            old.rename(new)
        else:  # joblib: the registry's scikit-learn format
            new = old.with_name(f"member_{i}.skops")
            est = load_member(str(old))
            save_skops(est, new)
            if not _same_model(est, load_member(str(new))):
                raise EcdflowError(f"{key}: the skops copy of {old.name} predicts differently "
                                   "from the registered member; not shipped")
            old.unlink()
            skopsed = True
        arts[key] = {"path": f"artifacts/{new.name}"}
    for art in arts.values():
        art.pop("uri", None)  # the registering machine's temporary paths
    arts["oof_predictions"] = {"path": f"artifacts/{oof_name}"}
    mlmodel.write_text(yaml.safe_dump(meta, sort_keys=False))
    if skopsed:  # the environment files pin what loads the members
        pin = skops_requirement()
        req = model_dir / "requirements.txt"
        if req.exists() and pin not in req.read_text().split():
            req.write_text(req.read_text().rstrip("\n") + f"\n{pin}\n")
        conda = model_dir / "conda.yaml"
        if conda.exists():
            env = yaml.safe_load(conda.read_text())
            for dep in env.get("dependencies", []):
                if isinstance(dep, dict) and "pip" in dep and pin not in dep["pip"]:
                    dep["pip"].append(pin)
            conda.write_text(yaml.safe_dump(env, sort_keys=False))


def interval_and_domain(model_dir: Path, per_material: pd.DataFrame, loeo: pd.DataFrame,
                        target: str) -> dict:
    """The card's ``interval`` (``ecdflow.pretrained.build.interval_facts`` of the version's
    calibration on the members' CV predictions ``per_material`` and the run's LOEO
    predictions ``loeo``, GPa), ``domain`` (size, elements, threshold) and ``label_std``
    (GPa), in the builder's layout."""
    from ecdflow.pretrained.build import interval_facts
    from ecdflow.registry import UQ_ARTIFACTS
    from ecdflow.uncertainty import Domain

    art = model_dir / "artifacts"
    cal = json.loads((art / UQ_ARTIFACTS["calibration"]).read_text())
    dom = Domain.load(art / UQ_ARTIFACTS["domain"])
    return {"interval": interval_facts(per_material, loeo, target, cal),
            "domain": {"n_train": len(dom.z), "n_elements": len(dom.elements),
                       "threshold": round(dom.threshold, 4), "percentile": dom.percentile},
            "label_std": float(per_material.y_true.std(ddof=1))}


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
    from ecdflow.registry import TAG_MEMBERS, ecd_dtype

    mv = find_version(settings, target, pipeline_run_id, version)
    tags = mv.tags
    members = [r for r in tags.get(TAG_MEMBERS, "").split(",") if r]
    if not members:
        raise EcdflowError(f"version {mv.version} of '{mv.name}' names no member runs")
    table = Path(table or settings.path(settings.paths.materials))
    rows = sum(1 for line in table.read_text().splitlines() if line.strip())
    model_type = tags[tracking.TAG_MODEL]
    name = model_name(model_type, dataset_name(rows), target)
    client = mlflow.MlflowClient()
    member_runs = [client.get_run(r) for r in members]
    oof = member_predictions(members)
    per_material = mean_over_repeats(oof)
    pipeline_run = tags.get(tracking.TAG_PIPELINE_RUN, "")
    loeo = loeo_predictions(settings, pipeline_run, model_type, target)
    added = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}",
                                                       dst_path=str(Path(tmp) / "model")))
        (src / "artifacts" / OOF).write_text(json.dumps({
            "unit": TARGET_UNIT, "target": target,
            "what": "CV test predictions of this ensemble's members, averaged over the repeats "
                    "of each fold (the residuals the interval is calibrated on)",
            **{c: per_material[c].round(4).tolist() if per_material[c].dtype.kind == "f"
               else per_material[c].tolist()
               for c in ("material_id", "fold", "y_true", "y_pred")}}))
        manifest_path = src / "artifacts" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        if INPUT_ECD in manifest.get("inputs", []) and ECD_DTYPE_PARAM not in manifest:
            added[ECD_DTYPE_PARAM] = manifest[ECD_DTYPE_PARAM] = ecd_dtype(member_runs[0],
                                                                           settings)
            manifest_path.write_text(json.dumps(manifest, indent=1))
        _repackage(src, manifest, OOF)
        facts = interval_and_domain(src, per_material, loeo, target)
        for old in shipped(out_dir):
            if old.target == target:
                shutil.rmtree(old.path)
        dest = out_dir / name
        shutil.copytree(src, dest)
    card = {"name": name, "target": target, "unit": TARGET_UNIT, "model_type": model_type,
            "inputs": manifest.get("inputs", []), "n_members": len(members),
            "member_folds": [member_fold(r) for r in member_runs], "member_runs": members,
            "data": {"table": table.name, "rows": rows,
                     "rows_with_target": int(oof.material_id.nunique()),
                     "table_md5": hashlib.md5(table.read_bytes()).hexdigest()},
            "data_version": tags.get(tracking.TAG_DATA_VERSION, "?"),
            "git_commit": tags.get(tracking.TAG_GIT, "unknown"),
            "source": {"registered_model": mv.name, "version": str(mv.version),
                       "pipeline_run_id": pipeline_run,
                       "profile": tags.get(tracking.TAG_PROFILE, ""),
                       "member_git_commits": sorted({r.data.tags.get(tracking.TAG_GIT, "unknown")
                                                     for r in member_runs})},
            "protocol": f"the registered fold ensemble of pipeline run "
                        f"{pipeline_run or '?'} (profile "
                        f"{tags.get(tracking.TAG_PROFILE, '?')})",
            "cv": cv_facts(oof), **facts,
            **({"manifest_added": added} if added else {}),
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
