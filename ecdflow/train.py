"""Train one model on one target and split (a :class:`~ecdflow.schema.RunKey`), resumably,
and log everything to MLflow.

``train_one`` reads the records (``ecdflow.records``), takes the split's training ids minus a
seeded validation fraction (early stopping), trains with per-epoch checkpoints under
``<work_dir>/checkpoints/`` (a killed run resumes from its last finished epoch with the
optimizer state, the early-stopping state and the epoch count), evaluates on the held-out
ids and logs one MLflow run (nested under the pipeline's parent run): tags, params, per-epoch
metrics, test MAE/RMSE/R2 in GPa, predictions, plots, the model with a signature, and the
records as an MLflow dataset input whose digest is the data hash.

The jobs around it live next door: ``ecdflow.fit`` (TensorFlow set-up, the resumable fit),
``ecdflow.datasets`` (tf.data views of the records), ``ecdflow.modellog`` (model logging)
and ``ecdflow.results`` (gathering runs into tables).
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecdflow import tracking as tr
from ecdflow.config import Settings
from ecdflow.datasets import (
    input_stats,
    keras_dataset,
    part_features,
    predict_test,
    tabular_arrays,
)
from ecdflow.errors import EcdflowError
from ecdflow.fit import checkpoint_dir, configure_tf, fit_keras
from ecdflow.log import get_logger
from ecdflow.modellog import load_logged_model, log_run_artifacts
from ecdflow.models import MODELS, ModelSpec, get_spec
from ecdflow.results import regression_metrics
from ecdflow.schema import (
    ECD_DTYPE_PARAM,
    GRID_PARAM,
    INPUT_ECD,
    INPUT_VOLUME,
    TABULAR_INPUTS,
    TARGETS,
    RunKey,
)
from ecdflow.splits import get_splits, select_split, split_kind, splits_digest, validation_ids
from ecdflow.symmetry import operations

log = get_logger(__name__)


@dataclass(frozen=True)
class RunData:
    """The records one run reads and its material ids: fit (training minus validation),
    validation (early stopping) and test (held out)."""

    records_dir: str
    grid: int
    data_hash: str
    fit_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]


def _check_key(key: RunKey) -> ModelSpec:
    spec = get_spec(key.model)
    if key.target not in TARGETS:
        raise EcdflowError(f"unknown target '{key.target}' (valid: {', '.join(TARGETS)})")
    if key.repeat < 0:
        raise EcdflowError(f"repeat must be >= 0, got {key.repeat}")
    return spec


def _result_from_run(run: Any) -> dict:
    m = run.data.metrics
    return {"run_id": run.info.run_id, "model": run.data.tags.get(tr.TAG_MODEL),
            "target": run.data.tags.get(tr.TAG_TARGET), "split": run.data.tags.get(tr.TAG_SPLIT),
            "repeat": int(run.data.tags.get(tr.TAG_REPEAT, 0)), "reused": True,
            **{k: m.get(k) for k in (tr.METRIC_MAE, tr.METRIC_RMSE, tr.METRIC_R2)}}


def train_one(settings: Settings, model: str, target: str, split: str,
              records_dir: str | Path | None = None, parent_run_id: str | None = None,
              pipeline_run_id: str | None = None, repeat: int = 0) -> dict:
    """Train, evaluate and log one model/target/split/repeat; returns ``run_id``, ``epochs``,
    ``seconds`` and the test metrics (GPa).

    With ``pipeline_run_id``, a FINISHED run of the same pipeline run, model, target, split,
    repeat and data version is reused instead of training again (task retries are cheap).
    Fusion reuses the same pipeline run's trained CNN+Magpie and 2D-CNN-SE (same target,
    split, repeat) from MLflow when present and trains the missing ones inline first (each
    logged as its own run).
    """
    result, _ = _train(settings, RunKey(model, target, split, repeat), records_dir,
                       parent_run_id, pipeline_run_id)
    return result


def _fusion_parts(settings: Settings, spec: ModelSpec, key: RunKey, records_dir: str,
                  parent_run_id: str | None, pipeline_run_id: str | None,
                  data_hash: str) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for name in spec.requires:
        part = RunKey(name, key.target, key.split, key.repeat)
        run = (tr.find_train_run(settings, pipeline_run_id, part, data_hash)
               if pipeline_run_id else None)
        if run is not None and run.data.tags.get(tr.TAG_MODEL_URI):
            log.info("fusion: reusing %s run %s", name, run.info.run_id)
            parts[name] = load_logged_model(run.data.tags[tr.TAG_MODEL_URI])
            continue
        log.info("fusion: training %s inline (no finished run in this pipeline run)", name)
        res, obj = _train(settings, part, records_dir, parent_run_id, pipeline_run_id)
        parts[name] = obj if obj is not None else load_logged_model(res["model_uri"])
    return parts


def _train(settings: Settings, key: RunKey, records_dir: str | Path | None,
           parent_run_id: str | None, pipeline_run_id: str | None) -> tuple[dict, Any]:
    import time

    import mlflow

    from ecdflow.records import density_kind, read_manifest
    from ecdflow.records_reader import read_index

    spec = _check_key(key)
    model, target, split, repeat = key.model, key.target, key.split, key.repeat
    rdir = str(records_dir or settings.path(settings.paths.records_dir))
    manifest = read_manifest(rdir)
    dh, grid = str(manifest["data_hash"]), int(manifest[GRID_PARAM])
    if pipeline_run_id:
        run = tr.find_train_run(settings, pipeline_run_id, key, dh)
        if run is not None:
            log.info("%s %s %s r%d: reusing finished run %s", model, target, split, repeat,
                     run.info.run_id)
            return _result_from_run(run), None
    t0 = time.perf_counter()
    tl = settings.training
    seed = settings.seed + repeat
    index = read_index(rdir)
    splits = get_splits(settings, index, dh)
    sp = select_split(splits, split)
    y_all = index.set_index("material_id")[target]
    ok = y_all[np.isfinite(y_all) & ((y_all > 0) if tl.log_target else True)].index
    have = set(ok)
    test_ids = [m for m in sp["test"] if m in have]
    train_all = [m for m in sp["train"] if m in have]
    if not test_ids or len(train_all) < 2:
        raise EcdflowError(f"split {split}: {len(train_all)} training and {len(test_ids)} test "
                           f"materials with {target}")
    val_ids = validation_ids(train_all, tl.validation_fraction, settings.seed)
    fit_ids = sorted(set(train_all) - set(val_ids))
    cfg = spec.config(settings.models.params.get(model))
    kind, fold = split_kind(split)
    tags = {**tr.base_tags(settings, pipeline_run_id), tr.TAG_ROLE: "train", tr.TAG_MODEL: model,
            tr.TAG_TARGET: target, tr.TAG_SPLIT: split, tr.TAG_SPLIT_KIND: kind,
            tr.TAG_FOLD: fold, tr.TAG_REPEAT: str(repeat), tr.TAG_DATA_VERSION: dh}
    configure_tf(settings, seed)
    parts = (_fusion_parts(settings, spec, key, rdir, parent_run_id, pipeline_run_id, dh)
             if spec.requires else None)
    configure_tf(settings, seed)
    if parent_run_id:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / tr.ARTIFACT_SPLITS
            path.write_text(json.dumps(splits, sort_keys=True))
            mlflow.MlflowClient().log_artifact(parent_run_id, str(path))
    data = RunData(rdir, grid, dh, fit_ids, val_ids, test_ids)
    name = tr.run_label(key)
    with tr.child_run(settings, parent_run_id, name, tags) as run:
        mlflow.log_params({GRID_PARAM: grid, "density_source": density_kind(manifest),
                           ECD_DTYPE_PARAM: manifest.get("dtype", "float32"),
                           "n_train": len(fit_ids), "n_val": len(val_ids),
                           "n_test": len(test_ids), "seed": seed, "splits_digest":
                           splits_digest(splits), **{f"training.{k}": v for k, v in
                                                     tl.model_dump().items()},
                           **{f"model.{k}": v for k, v in cfg.model_dump().items()}})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
            ds = mlflow.data.from_pandas(
                index[index.material_id.isin(fit_ids)][["material_id", "formula", target]],
                source=rdir, targets=target, name=f"records-grid{grid}",
                digest=dh.split(":")[-1][:32])
        mlflow.log_input(ds, context="training")  # digest = data hash (first 32 hex)
        if spec.is_keras:
            obj, history, epochs_run, resumed = _fit_keras_run(settings, spec, cfg, key, data,
                                                               parts)
            mids, yt, yp = predict_test(obj, rdir, target, spec.inputs, test_ids, tl)
        else:
            obj = spec.build(cfg, grid, seed=seed)
            tab = tuple(k for k in TABULAR_INPUTS if k in spec.inputs)
            _, x, y = tabular_arrays(rdir, target, tab, fit_ids, tl.log_target)
            obj.fit(x, y)
            mids, xt, yt = tabular_arrays(rdir, target, tab, test_ids, tl.log_target)
            yp = obj.predict(xt).astype(np.float64)
            history, epochs_run, resumed = {}, 1, 0
        to_gpa = (lambda v: np.power(10.0, v)) if tl.log_target else (lambda v: v)
        y_true, y_pred = to_gpa(np.asarray(yt, np.float64)), to_gpa(np.asarray(yp, np.float64))
        metrics = regression_metrics(y_true, y_pred)
        mlflow.log_metrics({**metrics, "epochs_run": epochs_run, "resumed_from_epoch": resumed})
        model_uri = log_run_artifacts(obj, spec, grid, index, mids, y_true, y_pred, history,
                                      resumed, name, target)
        mlflow.set_tag(tr.TAG_MODEL_URI, model_uri)
        secs = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", secs)
        result = {"run_id": run.info.run_id, "model": model, "target": target, "split": split,
                  "repeat": repeat, "epochs": epochs_run, "seconds": secs, "reused": False,
                  "model_uri": model_uri, **metrics}
    log.info("%s: MAE %.2f RMSE %.2f R2 %.3f GPa (%d epochs, %.1f s)", name,
             metrics[tr.METRIC_MAE], metrics[tr.METRIC_RMSE], metrics[tr.METRIC_R2], epochs_run,
             secs)
    return result, obj


def _fit_keras_run(settings: Settings, spec: ModelSpec, cfg: Any, key: RunKey, data: RunData,
                   parts: dict | None) -> tuple[Any, dict, int, int]:
    """Fit a Keras model on ``data`` (resumable); the best-epoch model, history, epochs run
    and the epoch it resumed from."""
    tl = settings.training
    target, repeat, grid, rdir = key.target, key.repeat, data.grid, data.records_dir
    fit_ids, val_ids = data.fit_ids, data.val_ids
    stats = input_stats(rdir, target, spec.inputs, fit_ids, tl.log_target)
    steps = max(1, math.ceil(len(fit_ids) / tl.batch_size))

    def build() -> Any:
        m = spec.build(cfg, grid, stats, parts, seed=settings.seed + repeat)
        m.compile(optimizer=spec.optimizer(cfg, steps), loss="mae")
        return m

    if spec.requires and not getattr(cfg, "train_parts", True) \
            and len(operations(tl.augment_symmetry)) <= MAX_CACHED_OPS:
        return _fit_frozen_parts_head(settings, spec, cfg, key, data, parts, stats, steps)
    train_ds = keras_dataset(rdir, target, spec.inputs, fit_ids, tl.batch_size,
                             settings.seed + repeat, tl.log_target, tl.augment_symmetry)
    val_ds = keras_dataset(rdir, target, spec.inputs, val_ids, tl.batch_size, None,
                           tl.log_target)
    ckpt = checkpoint_dir(settings, key, data.data_hash, cfg.model_dump())
    fit = fit_keras(build, train_ds, val_ds, epochs=tl.epochs, patience=tl.patience,
                    ckpt_dir=ckpt, log_to_mlflow=True, desc=f"{spec.name} {target} {key.split}")
    return fit.model, fit.history, fit.epochs_run, fit.resumed_from


MAX_CACHED_OPS = 2
"""Largest augmentation set (``training.augment_symmetry``: none 1, origin 2) for which a model
with frozen parts trains its head on cached part features; larger sets train the whole graph."""


def _fit_frozen_parts_head(settings: Settings, spec: ModelSpec, cfg: Any, key: RunKey,
                           data: RunData, parts: dict | None, stats: Any, steps: int
                           ) -> tuple[Any, dict, int, int]:
    """Fusion with frozen parts: the parts' features are computed once per material and
    symmetry operation, the head is trained on them (each epoch, each material through one
    random operation of ``training.augment_symmetry``, seeded, as the whole-graph path
    draws), and the served model is the parts joined to the trained head."""
    import tensorflow as tf

    from ecdflow.models import fusion

    tl = settings.training
    seed = settings.seed + key.repeat
    ext = fusion.extractor(parts or fusion.default_parts(data.grid, stats), data.grid)
    ops = operations(tl.augment_symmetry)
    args = (data.records_dir, key.target, spec.inputs)
    f_fit, y_fit = part_features(ext, *args, data.fit_ids, ops, tl.batch_size, tl.log_target)
    f_val, y_val = part_features(ext, *args, data.val_ids, [0], tl.batch_size, tl.log_target)
    width = f_fit.shape[-1]
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    train_ds = (tf.data.Dataset.from_tensor_slices((f_fit, y_fit[:, None]))
                .shuffle(len(y_fit), seed=seed, reshuffle_each_iteration=True))
    train_ds = (tf.data.Dataset.zip((train_ds, draws))
                .map(lambda fy, r: ({fusion.FEATURES: tf.gather(fy[0], r % len(ops))}, fy[1]))
                .batch(tl.batch_size))
    val_ds = tf.data.Dataset.from_tensor_slices(
        ({fusion.FEATURES: f_val[:, 0]}, y_val[:, None])).batch(tl.batch_size)

    def build() -> Any:
        m = fusion.head(cfg, width, stats)
        m.compile(optimizer=spec.optimizer(cfg, steps), loss="mae")
        return m

    ckpt = checkpoint_dir(settings, key, data.data_hash,
                          {**cfg.model_dump(), "fit": "head on cached part features"})
    fit = fit_keras(build, train_ds, val_ds, epochs=tl.epochs, patience=tl.patience,
                    ckpt_dir=ckpt, log_to_mlflow=True,
                    desc=f"{spec.name} {key.target} {key.split}")
    return fusion.assemble(ext, fit.model), fit.history, fit.epochs_run, fit.resumed_from


# ------------------------------------------------------------------------------------------
# Plan
# ------------------------------------------------------------------------------------------


def plan_runs(settings: Settings, index_df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, target, split) for every enabled model x target x split present in the data;
    fusion comes after its parts. Every CV split (both targets) comes before any LOEO split,
    so a long run that is stopped has finished Table 2 first (a local pipeline runs the tasks in
    this order: ``ecdflow.kfp.pipeline.build_pipeline``)."""
    from ecdflow.splits import split_names

    for m in settings.models.enabled:
        get_spec(m)
    order = sorted(settings.models.enabled, key=lambda m: len(MODELS[m].requires))
    splits = split_names(settings, index_df)
    return [(m, t, s) for kind in ("cv", "loeo") for t in settings.targets
            for s in splits if split_kind(s)[0] == kind for m in order]


def needs_density(model: str) -> bool:
    """Whether ``model`` reads the ECD (an ``ecd`` input: cnn3d, cnn2d_se, fusion)."""
    return INPUT_ECD in get_spec(model).inputs


def needs_structure(model: str) -> bool:
    """Whether ``model`` needs each material's structure: the ECD, or the volume per atom
    (``rf_magpie_volume``); a composition-only table has neither."""
    return bool({INPUT_ECD, INPUT_VOLUME} & set(get_spec(model).inputs))


def no_structure_line(model: str, table: str, what: str | None = None) -> str:
    """The one line said when a model that needs a structure (a density, or the volume per
    atom) is skipped for a composition-only table; ``what`` names the missing input (default:
    the density for a density model, else the volume per atom)."""
    what = what or ("density" if needs_density(model) else "volume per atom")
    return f"skipping {model}: records carry no {what} (composition-only table {table})"


def density_skip(model: str, manifest: dict) -> str | None:
    """Why ``model`` cannot train on records with this manifest (it needs a density or the
    volume per atom and the records carry none: ``records.has_density``, manifest
    ``has_volume``), as one line; None when it can."""
    from ecdflow.records import has_density

    table = str(manifest.get("materials") or "?")
    if needs_density(model) and not has_density(manifest):
        return no_structure_line(model, table)
    if INPUT_VOLUME in get_spec(model).inputs and not manifest.get("has_volume", False):
        return no_structure_line(model, table, "volume per atom")
    return None


def run_repeats(settings: Settings, model: str, split: str | None = None) -> int:
    """Repeats of one model: ``training.repeats`` for Keras models (``training.loeo_repeats``
    on a ``loeo-*`` split when set), 1 for scikit-learn."""
    if not get_spec(model).is_keras:
        return 1
    tl = settings.training
    if split is not None and split_kind(split)[0] == "loeo" and tl.loeo_repeats is not None:
        return tl.loeo_repeats
    return tl.repeats


