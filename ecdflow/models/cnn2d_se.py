"""2D-CNN-SE + ECD: the cube seen along x, y and z, one squeeze-excitation CNN branch each.

Each branch takes the N^3 cube as an N x N image whose N channels are the viewing axis.
SE block: 1x1 Conv2D to 24 channels -> global average pool -> Dense 4 (ReLU) -> Dense 24
(sigmoid) -> channel rescale; then Conv2D 64 (6x6, s6) -> Conv2D 128 (5x5, s2) -> MaxPool 2x2.
The three branches are concatenated (384 at 60^3) -> Dense 4096, 4096, 128, 128, 128,
32 ("penultimate", reused by fusion) -> 1. SGD lr 1e-3 halved every 10 epochs, MAE loss.
``width_scale`` multiplies the two 4096-wide layers (the quick profile uses 1/16 on CPU).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import (
    InputStats,
    ModelConfig,
    ModelSpec,
    conv_pool_stack,
    dense_stack,
    ecd_input,
    output_head,
)

# viewing axis -> Permute of (x, y, z) that puts that axis last (channels)
VIEWS = {"x": (2, 3, 1), "y": (1, 3, 2), "z": (1, 2, 3)}


class CNN2DSEConfig(ModelConfig):
    """Sizes and optimizer of the 2D-CNN-SE (paper defaults; ``width_scale`` for CPU runs)."""

    se_channels: int = 24
    se_bottleneck: int = 4
    filters: tuple[int, int] = (64, 128)
    dense: tuple[int, ...] = (4096, 4096, 128, 128, 128, 32)
    width_scale: float = Field(1.0, gt=0, le=1)
    """Multiplies dense layers wider than 128 (4096 -> 256 at 1/16)."""
    learning_rate: float = Field(1e-3, gt=0)
    halve_every_epochs: int = Field(10, ge=1)
    momentum: float = Field(0.0, ge=0, lt=1)


def _branch(x: Any, grid: int, cfg: CNN2DSEConfig, view: str) -> Any:
    """One projection branch: (grid, grid, grid) tensor -> flat feature vector."""
    import keras

    x = keras.layers.Permute(VIEWS[view], name=f"view_{view}")(x)
    h = keras.layers.Conv2D(cfg.se_channels, 1, activation="relu", name=f"se_in_{view}")(x)
    w = keras.layers.GlobalAveragePooling2D(name=f"se_gap_{view}")(h)
    w = keras.layers.Dense(cfg.se_bottleneck, activation="relu", name=f"se_down_{view}")(w)
    w = keras.layers.Dense(cfg.se_channels, activation="sigmoid", name=f"se_up_{view}")(w)
    w = keras.layers.Reshape((1, 1, cfg.se_channels))(w)
    x = keras.layers.Multiply(name=f"se_scale_{view}")([h, w])
    x = conv_pool_stack(x, grid, cfg.filters, [(6, 6), (5, 2)], keras.layers.Conv2D,
                        keras.layers.MaxPooling2D)
    return keras.layers.Flatten()(x)


def build(cfg: CNN2DSEConfig, grid: int, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """The Keras model: input ``ecd`` (grid^3, 1), output (batch, 1) in target space."""
    import keras

    stats = stats or InputStats()
    inp, x = ecd_input(grid, stats)
    cube = keras.layers.Reshape((grid, grid, grid))(x)
    x = keras.layers.Concatenate()([_branch(cube, grid, cfg, v) for v in VIEWS])
    widths = [max(1, round(w * cfg.width_scale)) if w > 128 else w for w in cfg.dense]
    x = dense_stack(x, widths)
    return keras.Model({"ecd": inp}, output_head(x, stats), name="cnn2d_se")


def optimizer(cfg: CNN2DSEConfig, steps_per_epoch: int) -> Any:
    """SGD at ``cfg.learning_rate``, halved every ``halve_every_epochs`` epochs (staircase)."""
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=max(1, steps_per_epoch) * cfg.halve_every_epochs,
        decay_rate=0.5, staircase=True)
    return keras.optimizers.SGD(schedule, momentum=cfg.momentum)


SPEC = ModelSpec(name="cnn2d_se", inputs=("ecd",), config_cls=CNN2DSEConfig, build=build,
                 optimizer=optimizer, is_keras=True,
                 description="SE 2D CNN on x/y/z projections of the ECD")
