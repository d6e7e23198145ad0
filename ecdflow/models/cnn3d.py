"""3D-CNN + ECD: Conv3D k5 s5 -> Conv3D k4 s4 -> MaxPool3D 2 -> Flatten -> seven Dense -> 1.

The paper gives neither filter counts nor dense widths (its figure shows "200@(5x5x5)"); ours
are chosen here and recorded in :class:`CNN3DConfig` (logged as MLflow params): filters
(64, 128) and dense widths (256, 256, 128, 128, 64, 64, 32). ReLU, Adam 5e-4, MAE loss. At 60^3
the shapes are 60 -> 12 -> 3 -> 1; on grids where a kernel no longer fits, that layer uses
``padding="same"`` so every grid >= 8 builds.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import (
    InputStats,
    ModelConfig,
    ModelSpec,
    adam,
    conv_pool_stack,
    dense_stack,
    ecd_input,
    output_head,
)


class CNN3DConfig(ModelConfig):
    """Our choice of the unspecified 3D-CNN sizes (see module docstring)."""

    filters: tuple[int, int] = (64, 128)
    dense: tuple[int, ...] = (256, 256, 128, 128, 64, 64, 32)
    learning_rate: float = Field(5e-4, gt=0)


def build(cfg: CNN3DConfig, grid: int, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """The Keras model: input ``ecd`` (grid^3, 1), output (batch, 1) in target space."""
    import keras

    stats = stats or InputStats()
    inp, x = ecd_input(grid, stats)
    x = conv_pool_stack(x, grid, cfg.filters, [(5, 5), (4, 4)], keras.layers.Conv3D,
                        keras.layers.MaxPooling3D)
    x = keras.layers.Flatten()(x)
    x = dense_stack(x, cfg.dense)
    return keras.Model({"ecd": inp}, output_head(x, stats), name="cnn3d")


SPEC = ModelSpec(name="cnn3d", inputs=("ecd",), config_cls=CNN3DConfig, build=build,
                 optimizer=adam, is_keras=True, description="3D CNN on the ECD cube")
