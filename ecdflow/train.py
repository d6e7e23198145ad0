"""Train one model on one target and split, resumably, and log everything to MLflow.

``train_one`` reads the records (``ecdflow.records``), takes the split's training ids minus a
seeded validation fraction (early stopping), trains with per-epoch checkpoints under
``<work_dir>/checkpoints/`` (a killed run resumes from its last finished epoch with the
optimizer state, the early-stopping state and the epoch count), evaluates on the held-out
ids and logs one MLflow run (nested under the pipeline's parent run): tags, params, per-epoch
metrics, test MAE/RMSE/R2 in GPa, predictions, plots, the model with a signature, and the
records as an MLflow dataset input whose digest is the data hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecdflow import tracking as tr
from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.log import get_logger
from ecdflow.models import MODELS, InputStats, ModelSpec, get_spec
from ecdflow.splits import get_splits, select_split, split_kind, splits_digest, validation_ids

log = get_logger(__name__)
TARGETS = ("K_VRH", "G_VRH")


# ------------------------------------------------------------------------------------------
# TensorFlow set-up
# ------------------------------------------------------------------------------------------


def configure_tf(settings: Settings, seed: int) -> None:
    """GPU memory growth, mixed precision (``training.mixed_precision``), deterministic ops
    (``training.deterministic``) and every RNG seeded with ``seed``."""
    import keras
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if settings.training.mixed_precision else "float32")
    if settings.training.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


# ------------------------------------------------------------------------------------------
# Resumable fit
# ------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """What :func:`fit_keras` returns: the best-epoch model and the whole history."""

    model: Any
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    resumed_from: int = 0
    stopped_early: bool = False


def _state_path(ckpt_dir: Path) -> Path:
    return ckpt_dir / "state.json"


def read_checkpoint_state(ckpt_dir: Path) -> dict | None:
    """The saved training state (epoch, history, best, wait, stopped, model file), or None."""
    p = _state_path(ckpt_dir)
    return json.loads(p.read_text()) if p.exists() else None


def _make_checkpoint_callback(ckpt_dir: Path, patience: int, state: dict) -> Any:
    """Keras callback: early stopping on ``val_loss`` plus an atomic per-epoch checkpoint
    (``epoch-<n>.keras`` with optimizer state, then ``state.json`` pointing at it)."""
    import keras

    class ResumableCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            for k, v in logs.items():
                state["history"].setdefault(k, []).append(float(v))
            monitor = float(logs.get("val_loss", logs.get("loss", math.inf)))
            if monitor < state["best"]:
                state["best"], state["wait"] = monitor, 0
                self.model.save_weights(ckpt_dir / "best.weights.h5")
            else:
                state["wait"] += 1
            if state["wait"] >= patience:
                state["stopped"] = True
                self.model.stop_training = True
            old = state.get("model_file")
            state["epoch"] = epoch + 1
            state["model_file"] = f"epoch-{epoch + 1}.keras"
            self.model.save(ckpt_dir / state["model_file"])
            tmp = ckpt_dir / "state.json.tmp"
            tmp.write_text(json.dumps(state))
            tmp.replace(_state_path(ckpt_dir))
            if old and old != state["model_file"]:
                (ckpt_dir / old).unlink(missing_ok=True)

    return ResumableCheckpoint()


def _lr_callback() -> Any:
    """Adds the optimizer's current learning rate to the epoch logs as ``lr``."""
    import keras

    class LearningRate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["lr"] = float(keras.ops.convert_to_numpy(lr))

    return LearningRate()


def _progress_callback(total: int, initial: int, desc: str) -> Any:
    """A tqdm bar over epochs (silenced by ``ECDFLOW_NO_PROGRESS=1``)."""
    import os

    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="epoch", leave=False,
                            disable=os.environ.get("ECDFLOW_NO_PROGRESS") == "1")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in (logs or {}).items()})
            self.bar.update(1)

        def on_train_end(self, logs: dict | None = None) -> None:
            self.bar.close()

    return EpochBar()


def _mlflow_callback() -> Any:
    """Logs every epoch's metrics (loss, val_loss, lr) to the active MLflow run."""
    import keras
    import mlflow

    class MlflowEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)

    return MlflowEpochs()


def fit_keras(build: Callable[[], Any], train_ds: Any, val_ds: Any, *, epochs: int,
              patience: int, ckpt_dir: str | Path, callbacks: list | tuple = (),
              log_to_mlflow: bool = False, desc: str = "train") -> FitResult:
    """Fit a compiled Keras model for up to ``epochs`` epochs with early stopping, resuming
    from ``ckpt_dir`` when a previous attempt left a checkpoint there.

    ``build()`` must return a freshly compiled model (used only when there is no checkpoint).
    The returned model carries the weights of the best validation epoch.
    """
    import keras

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = read_checkpoint_state(ckpt_dir)
    if state and (ckpt_dir / state["model_file"]).exists():
        model = keras.saving.load_model(ckpt_dir / state["model_file"])
        log.info("%s: resuming after epoch %d from %s", desc, state["epoch"], ckpt_dir)
    else:
        state = {"epoch": 0, "history": {}, "best": math.inf, "wait": 0, "stopped": False,
                 "model_file": None}
        model = build()
    resumed_from = int(state["epoch"])
    if log_to_mlflow and resumed_from:
        import mlflow

        for step in range(resumed_from):
            mlflow.log_metrics({k: v[step] for k, v in state["history"].items()
                                if len(v) > step}, step=step)
    if not state["stopped"] and state["epoch"] < epochs:
        cbs = [_lr_callback(), _make_checkpoint_callback(ckpt_dir, patience, state),
               _progress_callback(epochs, resumed_from, desc)]
        if log_to_mlflow:
            cbs.append(_mlflow_callback())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ran out of data.*")
            warnings.filterwarnings("ignore", message=".*shuffle=True.*")
            model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                      initial_epoch=resumed_from, callbacks=cbs + list(callbacks), verbose=0)
    if (ckpt_dir / "best.weights.h5").exists():
        model.load_weights(ckpt_dir / "best.weights.h5")
    return FitResult(model, state["history"], int(state["epoch"]), resumed_from,
                     bool(state["stopped"]))


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def keras_dataset(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                  batch_size: int, shuffle_seed: int | None, log_target: bool) -> Any:
    """``(features, label)`` batches with only the model's ``inputs`` as features."""
    from ecdflow.records import make_dataset

    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids, batch_size=batch_size,
                      shuffle_seed=shuffle_seed, cache=True, log_target=log_target)
    return ds.map(lambda f, y: ({k: f[k] for k in inputs}, y))


def dataset_arrays(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                   log_target: bool) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Material ids, feature arrays and labels (file order) of ``ids`` as numpy."""
    from ecdflow.records import make_dataset

    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids, batch_size=256,
                      cache=False, log_target=log_target)
    mids: list[str] = []
    feats: dict[str, list[np.ndarray]] = {k: [] for k in inputs}
    ys: list[np.ndarray] = []
    for f, y in ds:
        mids += [m.decode() for m in f["material_id"].numpy()]
        for k in inputs:
            feats[k].append(f[k].numpy())
        ys.append(y.numpy().reshape(-1))
    arrays = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in feats.items()}
    return mids, arrays, np.concatenate(ys) if ys else np.zeros(0, np.float32)


def safe_variance(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-feature variances safe to divide by: a feature (near-)constant on the training set
    is scaled by its magnitude instead of by ~0, so an unseen value (e.g. an element absent
    from training, as in leave-one-element-out) cannot blow the input up by ~1e7."""
    scale = np.maximum(1.0, mean**2)
    return np.where(var > 1e-6 * scale, var, scale)


def input_stats(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                log_target: bool) -> InputStats:
    """Training-set means/variances of the inputs and of the label (one streaming pass)."""
    from ecdflow.records import make_dataset

    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids, batch_size=128,
                      cache=False, log_target=log_target)
    n, ys = 0, []
    m_sum = m_sq = 0.0
    e_sum = e_sq = e_n = 0.0
    for f, y in ds:
        ys.append(y.numpy().reshape(-1))
        if "magpie" in inputs:
            x = f["magpie"].numpy().astype(np.float64)
            m_sum, m_sq = m_sum + x.sum(0), m_sq + (x * x).sum(0)
            n += len(x)
        if "ecd" in inputs:
            x = f["ecd"].numpy().astype(np.float64)
            e_sum, e_sq, e_n = e_sum + x.sum(), e_sq + (x * x).sum(), e_n + x.size
    y = np.concatenate(ys) if ys else np.zeros(1)
    kw: dict[str, Any] = {"y_mean": float(y.mean()), "y_std": float(y.std()) or 1.0}
    if n:
        mean = m_sum / n
        kw.update(magpie_mean=mean.astype(np.float32),
                  magpie_var=safe_variance(mean, m_sq / n - mean**2).astype(np.float32))
    if e_n:
        mean = e_sum / e_n
        kw.update(ecd_mean=float(mean), ecd_var=float(max(e_sq / e_n - mean**2, 1e-12)))
    return InputStats(**kw)


def predict_dataset(model: Any, ds: Any, inputs: tuple[str, ...]
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Material ids, true and predicted labels (training-target space) over ``ds``."""
    mids, yt, yp = [], [], []
    for f, y in ds:
        mids += [m.decode() for m in f["material_id"].numpy()]
        yt.append(y.numpy().reshape(-1))
        out = model({k: f[k] for k in inputs}, training=False)
        yp.append(np.asarray(out, np.float64).reshape(-1))
    return mids, np.concatenate(yt), np.concatenate(yp)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE and RMSE (GPa) and R2 of predictions already converted to GPa."""
    err = np.asarray(y_pred, float) - np.asarray(y_true, float)
    ss = float(np.sum((y_true - np.mean(y_true)) ** 2))
    return {tr.METRIC_MAE: float(np.mean(np.abs(err))),
            tr.METRIC_RMSE: float(np.sqrt(np.mean(err**2))),
            tr.METRIC_R2: 1.0 - float(np.sum(err**2)) / ss if ss > 0 else float("nan")}


# ------------------------------------------------------------------------------------------
# One run
# ------------------------------------------------------------------------------------------


def checkpoint_dir(settings: Settings, model: str, target: str, split: str, repeat: int,
                   data_hash: str, config: dict) -> Path:
    """Checkpoint folder keyed by data hash, model, target, split, repeat and a hash of the
    model config + training settings (a changed config never resumes a stale run)."""
    key = json.dumps({"model": config, "training": settings.training.model_dump(),
                      "seed": settings.seed}, sort_keys=True, default=str)
    h = hashlib.sha256(key.encode()).hexdigest()[:10]
    dh = data_hash.split(":")[-1][:12]
    return settings.work_dir / "checkpoints" / dh / model / target / split / f"r{repeat}-{h}"


def _signature(inputs: tuple[str, ...], grid: int, keras_model: bool) -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    shapes = {"ecd": (-1, grid, grid, grid, 1), "magpie": (-1, 132)}
    f32 = np.dtype("float32")
    if keras_model:
        ins = Schema([TensorSpec(f32, shapes[k], k) for k in inputs])
    else:
        ins = Schema([TensorSpec(f32, shapes["magpie"])])
    return ModelSignature(inputs=ins, outputs=Schema([TensorSpec(f32, (-1, 1))]))


def log_trained_model(obj: Any, spec: ModelSpec, grid: int) -> str:
    """Log the model (Keras: ``mlflow.keras``; RF: ``mlflow.sklearn``/skops) with a signature
    and explicit pip requirements; returns its model URI."""
    import mlflow

    sig = _signature(spec.inputs, grid, spec.is_keras)
    if spec.is_keras:
        import keras
        import tensorflow as tf

        info = mlflow.keras.log_model(obj, name=tr.MODEL_NAME, signature=sig, pip_requirements=[
            f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
    else:
        import sklearn
        import skops

        info = mlflow.sklearn.log_model(
            obj, name=tr.MODEL_NAME, signature=sig,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}",
                              f"skops=={skops.__version__}"],
            skops_trusted_types=["sklearn.tree._tree.Tree"])
    return info.model_uri


def load_logged_model(model_uri: str) -> Any:
    """Load a Keras model logged by :func:`log_trained_model`."""
    import mlflow

    return mlflow.keras.load_model(model_uri)


def _check_names(settings: Settings, model: str, target: str) -> ModelSpec:
    spec = get_spec(model)
    if target not in TARGETS:
        raise EcdflowError(f"unknown target '{target}' (valid: {', '.join(TARGETS)})")
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
    result, _ = _train(settings, model, target, split, records_dir, parent_run_id,
                       pipeline_run_id, repeat)
    return result


def _fusion_parts(settings: Settings, spec: ModelSpec, target: str, split: str, repeat: int,
                  records_dir: str, parent_run_id: str | None, pipeline_run_id: str | None,
                  data_hash: str) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for name in spec.requires:
        run = (tr.find_train_run(settings, pipeline_run_id, name, target, split, repeat,
                                 data_hash) if pipeline_run_id else None)
        if run is not None and run.data.tags.get(tr.TAG_MODEL_URI):
            log.info("fusion: reusing %s run %s", name, run.info.run_id)
            parts[name] = load_logged_model(run.data.tags[tr.TAG_MODEL_URI])
            continue
        log.info("fusion: training %s inline (no finished run in this pipeline run)", name)
        res, obj = _train(settings, name, target, split, records_dir, parent_run_id,
                          pipeline_run_id, repeat)
        parts[name] = obj if obj is not None else load_logged_model(res["model_uri"])
    return parts


def _train(settings: Settings, model: str, target: str, split: str,
           records_dir: str | Path | None, parent_run_id: str | None,
           pipeline_run_id: str | None, repeat: int) -> tuple[dict, Any]:
    import time

    import mlflow

    from ecdflow.records import read_index, read_manifest

    spec = _check_names(settings, model, target)
    if repeat < 0:
        raise EcdflowError(f"repeat must be >= 0, got {repeat}")
    rdir = str(records_dir or settings.path(settings.paths.records_dir))
    manifest = read_manifest(rdir)
    dh, grid = str(manifest["data_hash"]), int(manifest["grid"])
    if pipeline_run_id:
        run = tr.find_train_run(settings, pipeline_run_id, model, target, split, repeat, dh)
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
    parts = (_fusion_parts(settings, spec, target, split, repeat, rdir, parent_run_id,
                           pipeline_run_id, dh) if spec.requires else None)
    configure_tf(settings, seed)
    if parent_run_id:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / tr.ARTIFACT_SPLITS
            path.write_text(json.dumps(splits, sort_keys=True))
            mlflow.MlflowClient().log_artifact(parent_run_id, str(path))
    name = f"{model}-{target}-{split}-r{repeat}"
    with tr.child_run(settings, parent_run_id, name, tags) as run:
        mlflow.log_params({"grid": grid, "n_train": len(fit_ids), "n_val": len(val_ids),
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
            obj, history, epochs_run, resumed = _fit_keras_run(
                settings, spec, cfg, target, split, repeat, rdir, grid, dh, fit_ids, val_ids,
                parts)
            mids, yt, yp = _predict_test(obj, rdir, target, spec.inputs, test_ids, tl)
        else:
            obj = spec.build(cfg, grid, seed=seed)
            _, x, y = dataset_arrays(rdir, target, ("magpie",), fit_ids, tl.log_target)
            obj.fit(x["magpie"], y)
            mids, xt, yt = dataset_arrays(rdir, target, ("magpie",), test_ids, tl.log_target)
            yp = obj.predict(xt["magpie"]).astype(np.float64)
            history, epochs_run, resumed = {}, 1, 0
        to_gpa = (lambda v: np.power(10.0, v)) if tl.log_target else (lambda v: v)
        y_true, y_pred = to_gpa(np.asarray(yt, np.float64)), to_gpa(np.asarray(yp, np.float64))
        metrics = regression_metrics(y_true, y_pred)
        mlflow.log_metrics({**metrics, "epochs_run": epochs_run, "resumed_from_epoch": resumed})
        model_uri = _log_artifacts(obj, spec, grid, index, mids, y_true, y_pred, history,
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


def _predict_test(model: Any, rdir: str, target: str, inputs: tuple[str, ...],
                  test_ids: list[str], tl: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    from ecdflow.records import make_dataset

    ds = make_dataset(rdir, target=target, inputs=inputs, ids=test_ids,
                      batch_size=tl.batch_size, cache=False, log_target=tl.log_target)
    return predict_dataset(model, ds, inputs)


def _fit_keras_run(settings: Settings, spec: ModelSpec, cfg: Any, target: str, split: str,
                   repeat: int, rdir: str, grid: int, dh: str, fit_ids: list[str],
                   val_ids: list[str], parts: dict | None) -> tuple[Any, dict, int, int]:
    tl = settings.training
    stats = input_stats(rdir, target, spec.inputs, fit_ids, tl.log_target)
    steps = max(1, math.ceil(len(fit_ids) / tl.batch_size))

    def build() -> Any:
        m = spec.build(cfg, grid, stats, parts, seed=settings.seed + repeat)
        m.compile(optimizer=spec.optimizer(cfg, steps), loss="mae")
        return m

    train_ds = keras_dataset(rdir, target, spec.inputs, fit_ids, tl.batch_size,
                             settings.seed + repeat, tl.log_target)
    val_ds = keras_dataset(rdir, target, spec.inputs, val_ids, tl.batch_size, None,
                           tl.log_target)
    ckpt = checkpoint_dir(settings, spec.name, target, split, repeat, dh, cfg.model_dump())
    fit = fit_keras(build, train_ds, val_ds, epochs=tl.epochs, patience=tl.patience,
                    ckpt_dir=ckpt, log_to_mlflow=True, desc=f"{spec.name} {target} {split}")
    return fit.model, fit.history, fit.epochs_run, fit.resumed_from


def _log_artifacts(obj: Any, spec: ModelSpec, grid: int, index: pd.DataFrame, mids: list[str],
                   y_true: np.ndarray, y_pred: np.ndarray, history: dict, resumed: int,
                   title: str, target: str) -> str:
    import mlflow

    from ecdflow.plots import learning_curve, parity_plot

    meta = index.set_index("material_id")
    pred = pd.DataFrame({"material_id": mids, "formula": meta.loc[mids, "formula"].to_numpy(),
                         "elements": [" ".join(e) for e in meta.loc[mids, "elements"]],
                         "y_true": y_true, "y_pred": y_pred})
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        pred.to_csv(t / tr.ARTIFACT_PREDICTIONS, index=False)
        parity_plot(y_true, y_pred, t / tr.ARTIFACT_PARITY, title=f"{title} ({target}, GPa)")
        files = [t / tr.ARTIFACT_PREDICTIONS, t / tr.ARTIFACT_PARITY]
        if history:
            learning_curve(history, t / tr.ARTIFACT_LEARNING_CURVE, title=title,
                           resumed_at=resumed or None)
            files.append(t / tr.ARTIFACT_LEARNING_CURVE)
        for f in files:
            mlflow.log_artifact(str(f))
    return log_trained_model(obj, spec, grid)


# ------------------------------------------------------------------------------------------
# Plan and results
# ------------------------------------------------------------------------------------------


def plan_runs(settings: Settings, index_df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, target, split) for every enabled model x target x split present in the data;
    fusion comes after its parts."""
    from ecdflow.splits import split_names

    for m in settings.models.enabled:
        get_spec(m)
    order = sorted(settings.models.enabled, key=lambda m: len(MODELS[m].requires))
    return [(m, t, s) for t in settings.targets for s in split_names(settings, index_df)
            for m in order]


def run_repeats(settings: Settings, model: str) -> int:
    """Repeats of one model: ``training.repeats`` for Keras models, 1 for scikit-learn."""
    return settings.training.repeats if get_spec(model).is_keras else 1


def collect_runs(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """One row per finished training run of a pipeline run: model, target, split, split_kind,
    fold, repeat, r2, rmse, mae (GPa), run_id."""
    rows = []
    for run in tr.pipeline_runs(settings, pipeline_run_id, role="train"):
        if run.info.status != "FINISHED":
            continue
        t, m = run.data.tags, run.data.metrics
        rows.append({"model": t.get(tr.TAG_MODEL), "target": t.get(tr.TAG_TARGET),
                     "split": t.get(tr.TAG_SPLIT), "split_kind": t.get(tr.TAG_SPLIT_KIND),
                     "fold": t.get(tr.TAG_FOLD), "repeat": int(t.get(tr.TAG_REPEAT, 0)),
                     "r2": m.get(tr.METRIC_R2), "rmse": m.get(tr.METRIC_RMSE),
                     "mae": m.get(tr.METRIC_MAE), "run_id": run.info.run_id})
    cols = ["model", "target", "split", "split_kind", "fold", "repeat", "r2", "rmse", "mae",
            "run_id"]
    return pd.DataFrame(rows, columns=cols)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Means over folds and repeats (CV) or repeats (LOEO): columns split_kind, element ("" for
    CV), target, model, r2, rmse, mae, n_runs."""
    runs = runs.assign(element=np.where(runs.split_kind == "loeo", runs.fold, ""))
    keys = ["split_kind", "element", "target", "model"]
    agg = runs.groupby(keys, as_index=False).agg(r2=("r2", "mean"), rmse=("rmse", "mean"),
                                                 mae=("mae", "mean"), n_runs=("run_id", "size"))
    return agg.sort_values(keys).reset_index(drop=True)


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def format_tables(summary: pd.DataFrame) -> dict[str, str]:
    """Markdown of the paper's layouts: ``table2_cv`` (target x model, "R2 / RMSE") and
    ``table3_loeo`` (element x target/model, "R2 / RMSE")."""
    cell = summary.assign(cell=[f"{a:.3f} / {b:.3f}" for a, b in zip(summary.r2, summary.rmse,
                                                                    strict=True)])
    out = {}
    cv = cell[cell.split_kind == "cv"]
    if len(cv):
        t2 = cv.pivot(index="target", columns="model", values="cell").reset_index()
        out["table2_cv"] = _markdown(t2.fillna("-"))
    lo = cell[cell.split_kind == "loeo"]
    if len(lo):
        lo = lo.assign(col=lo.target + " " + lo.model)
        t3 = lo.pivot(index="element", columns="col", values="cell").reset_index()
        out["table3_loeo"] = _markdown(t3.fillna("-"))
    return out


def results_table(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """The pipeline run's results as Table 2 (CV) and Table 3 (LOEO): printed, and logged as
    markdown + csv under ``results/`` of the parent run. Returns :func:`summarise`'s frame."""
    import mlflow

    summary = summarise(collect_runs(settings, pipeline_run_id))
    tables = format_tables(summary)
    for name, md in tables.items():
        print(f"\n{name}\n{md}")
    parent = tr.find_parent_run(settings, pipeline_run_id)
    if parent:
        client = mlflow.MlflowClient()
        with tempfile.TemporaryDirectory() as tmp:
            summary.to_csv(Path(tmp) / "results.csv", index=False)
            for name, md in tables.items():
                (Path(tmp) / f"{name}.md").write_text(md)
            client.log_artifacts(parent, tmp, tr.ARTIFACT_RESULTS)
    return summary
