"""What every model file provides: a typed config, a builder and an optimizer factory.

A model is registered by one ``ModelSpec`` in ``ecdflow/models/__init__.py``. Keras models take
a dict of named inputs among ``"ecd"`` (N, N, N, 1; e/Å^3) and ``"magpie"`` (132,) and return
(batch, 1) in the training-target space (GPa, or log10 GPa with ``training.log_target``).
Input scaling and the target's mean/std live inside the model (``Normalization`` and
``Rescaling`` layers built from ``InputStats``), so a saved model needs no side files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ecdflow.errors import ConfigError
from ecdflow.schema import MAGPIE_LEN as MAGPIE_DIM


class ModelConfig(BaseModel):
    """Base of every model's hyper-parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class InputStats:
    """Training-set statistics baked into a Keras model.

    ``magpie_mean``/``magpie_var``: per-feature (132,); ``ecd_mean``/``ecd_var``: scalars over all
    voxels (e/Å^3, (e/Å^3)^2); ``y_mean``/``y_std``: target in training space (GPa or log10 GPa).
    """

    magpie_mean: np.ndarray = field(default_factory=lambda: np.zeros(MAGPIE_DIM, np.float32))
    magpie_var: np.ndarray = field(default_factory=lambda: np.ones(MAGPIE_DIM, np.float32))
    ecd_mean: float = 0.0
    ecd_var: float = 1.0
    y_mean: float = 0.0
    y_std: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``build(cfg, grid, stats, parts)`` returns a Keras model or a scikit-learn estimator;
    ``optimizer(cfg, steps_per_epoch)`` a Keras optimizer (None for scikit-learn);
    ``requires`` names models whose trained instances ``build`` takes in ``parts`` (fusion).
    """

    name: str
    inputs: tuple[str, ...]
    config_cls: type[ModelConfig]
    build: Callable[..., Any]
    optimizer: Callable[[Any, int], Any] | None
    is_keras: bool
    requires: tuple[str, ...] = ()
    description: str = ""

    def config(self, params: dict[str, Any] | None = None) -> Any:
        """The model's config: defaults overridden by ``params`` (``models.params.<name>``)."""
        try:
            return self.config_cls.model_validate(params or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"models.params.{self.name}.{key}: {err['msg']}") from None


def conv_padding(size: int, kernel: int) -> str:
    """``"valid"`` when a kernel fits the input edge (``size`` voxels), else ``"same"``.

    Keeps the paper's shapes at 60^3 while letting small grids (8, 16, 32) pass every layer.
    """
    return "valid" if size >= kernel else "same"


def out_size(size: int, kernel: int, stride: int) -> int:
    """Edge length after a conv/pool with :func:`conv_padding` (voxels)."""
    if conv_padding(size, kernel) == "valid":
        return (size - kernel) // stride + 1
    return -(-size // stride)


def conv_pool_stack(x: Any, grid: int, filters: Sequence[int],
                    kernel_strides: Sequence[tuple[int, int]], conv: Any, pool: Any) -> Any:
    """Strided ReLU convolutions (``conv``: Conv2D or Conv3D) then a 2-wide max pool
    (``pool``), each "valid" where its kernel fits the remaining edge and "same" otherwise."""
    size = grid
    for f, (k, s) in zip(filters, kernel_strides, strict=True):
        x = conv(f, k, strides=s, padding=conv_padding(size, k), activation="relu")(x)
        size = out_size(size, k, s)
    return pool(2, padding=conv_padding(size, 2))(x)


def dense_stack(x: Any, widths: Sequence[int]) -> Any:
    """ReLU Dense layers of the given widths; the last is named "penultimate" (the fusion
    model cuts its pre-trained parts there)."""
    import keras

    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        x = keras.layers.Dense(width, activation="relu", name="penultimate" if last else None)(x)
    return x


def adam(cfg: Any, steps_per_epoch: int) -> Any:
    """Adam at ``cfg.learning_rate`` (the paper's optimizer for all but the 2D-CNN)."""
    import keras

    return keras.optimizers.Adam(cfg.learning_rate)


def output_head(x: Any, stats: InputStats) -> Any:
    """Dense(1) then Rescaling by the target's std/mean, both float32 (mixed-precision safe)."""
    import keras

    x = keras.layers.Dense(1, dtype="float32", name="out")(x)
    return keras.layers.Rescaling(scale=float(stats.y_std), offset=float(stats.y_mean),
                                  dtype="float32", name="to_target")(x)


def magpie_input(stats: InputStats) -> tuple[Any, Any]:
    """The ``magpie`` input (132,) and its standardised tensor."""
    import keras

    inp = keras.Input((MAGPIE_DIM,), name="magpie", dtype="float32")
    x = keras.layers.Normalization(axis=-1, mean=np.asarray(stats.magpie_mean, np.float32),
                                   variance=np.asarray(stats.magpie_var, np.float32),
                                   name="magpie_norm")(inp)
    return inp, x


def ecd_input(grid: int, stats: InputStats) -> tuple[Any, Any]:
    """The ``ecd`` input (grid, grid, grid, 1) and its standardised tensor (scalar mean/var)."""
    import keras

    inp = keras.Input((grid, grid, grid, 1), name="ecd", dtype="float32")
    x = keras.layers.Normalization(axis=None, mean=float(stats.ecd_mean),
                                   variance=float(stats.ecd_var), name="ecd_norm")(inp)
    return inp, x
