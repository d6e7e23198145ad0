"""Log a trained model and its run artifacts to MLflow (signature, pip requirements,
predictions, parity plot, learning curve), and load it back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecdflow import tracking as tr
from ecdflow.models import ModelSpec
from ecdflow.schema import INPUT_MAGPIE, input_shape, tabular_width


def _signature(inputs: tuple[str, ...], grid: int, keras_model: bool) -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    f32 = np.dtype("float32")
    if keras_model:
        ins = Schema([TensorSpec(f32, input_shape(k, grid), k) for k in inputs])
    else:
        width = tabular_width(inputs)
        ins = Schema([TensorSpec(f32, (-1, width or input_shape(INPUT_MAGPIE, grid)[1]))])
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

        from ecdflow.ensemble import SKOPS_TRUSTED

        info = mlflow.sklearn.log_model(
            obj, name=tr.MODEL_NAME, signature=sig,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}",
                              f"skops=={skops.__version__}"],
            skops_trusted_types=SKOPS_TRUSTED)
    return info.model_uri


def load_logged_model(model_uri: str) -> Any:
    """Load a Keras model logged by :func:`log_trained_model`."""
    import mlflow

    return mlflow.keras.load_model(model_uri)


def log_run_artifacts(obj: Any, spec: ModelSpec, grid: int, index: pd.DataFrame,
                      mids: list[str], y_true: np.ndarray, y_pred: np.ndarray, history: dict,
                      resumed: int, title: str, target: str) -> str:
    """Log a training run's predictions (CSV, GPa), parity plot, learning curve (Keras) and
    the model (:func:`log_trained_model`) to the active MLflow run; returns the model URI."""
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
