"""The resumable Keras fit: TensorFlow set-up, per-epoch checkpoints, early stopping.

A killed run resumes from its last finished epoch with the optimizer state, the
early-stopping state and the epoch count (checkpoints under ``<work_dir>/checkpoints/``).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecdflow.config import Settings
from ecdflow.log import get_logger
from ecdflow.schema import RunKey

log = get_logger(__name__)


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


def checkpoint_dir(settings: Settings, key: RunKey, data_hash: str, config: dict) -> Path:
    """Checkpoint folder keyed by data hash, model, target, split, repeat and a hash of the
    model config + training settings (a changed config never resumes a stale run)."""
    what = json.dumps({"model": config, "training": settings.training.model_dump(),
                       "seed": settings.seed}, sort_keys=True, default=str)
    h = hashlib.sha256(what.encode()).hexdigest()[:10]
    dh = data_hash.split(":")[-1][:12]
    return (settings.work_dir / "checkpoints" / dh / key.model / key.target / key.split
            / f"r{key.repeat}-{h}")
