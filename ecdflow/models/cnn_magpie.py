"""CNN + Magpie: the 132 Magpie features plus 12 zeros as a 12x12 image (paper, Table 2).

Conv2D 32 (3x3) -> Conv2D 48 (3x3) -> AvgPool 2x2 -> Conv2D 64 (3x3) -> Flatten -> Dense 48 ->
Dense 32 ("penultimate", reused by fusion) -> 1. ReLU, Adam 1e-3, MAE loss.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import (
    InputStats,
    ModelConfig,
    ModelSpec,
    adam,
    dense_stack,
    magpie_input,
    output_head,
)
from ecdflow.schema import MAGPIE_LEN


class CNNMagpieConfig(ModelConfig):
    """Layer sizes and optimizer of the CNN+Magpie (paper defaults)."""

    filters: tuple[int, int, int] = (32, 48, 64)
    dense: tuple[int, int] = (48, 32)
    learning_rate: float = Field(1e-3, gt=0)


def build(cfg: CNNMagpieConfig, grid: int = 0, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """The Keras model: input ``magpie`` (132,), output (batch, 1) in target space."""
    import keras

    stats = stats or InputStats()
    inp, x = magpie_input(stats)
    x = keras.layers.Reshape((MAGPIE_LEN, 1))(x)
    x = keras.layers.ZeroPadding1D((0, 12))(x)
    x = keras.layers.Reshape((12, 12, 1))(x)
    f1, f2, f3 = cfg.filters
    x = keras.layers.Conv2D(f1, 3, activation="relu")(x)
    x = keras.layers.Conv2D(f2, 3, activation="relu")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(f3, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = dense_stack(x, cfg.dense)
    return keras.Model({"magpie": inp}, output_head(x, stats), name="cnn_magpie")


SPEC = ModelSpec(name="cnn_magpie", inputs=("magpie",), config_cls=CNNMagpieConfig, build=build,
                 optimizer=adam, is_keras=True, description="2D CNN on Magpie as 12x12")
