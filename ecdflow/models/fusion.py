"""Fusion: pre-trained CNN+Magpie and 2D-CNN-SE+ECD, penultimate outputs concatenated.

The two parts' 32-wide "penultimate" layers (64 together) feed Dense 128 -> 64 -> 32 -> 1;
Adam 1e-3, MAE loss. The parts are frozen by default (``train_parts``); ``ecdflow.train``
supplies them trained on the same target/split/repeat (see ``train_one``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models import cnn2d_se, cnn_magpie
from ecdflow.models.base import InputStats, ModelConfig, ModelSpec, adam, dense_stack, output_head
from ecdflow.schema import MAGPIE_LEN


class FusionConfig(ModelConfig):
    """Head sizes and optimizer of the fusion model (paper defaults)."""

    dense: tuple[int, ...] = (128, 64, 32)
    learning_rate: float = Field(1e-3, gt=0)
    train_parts: bool = False


def _penultimate(model: Any, prefix: str) -> Any:
    """A frozen-able feature extractor: ``model`` cut at its "penultimate" layer."""
    import keras

    return keras.Model(model.input, model.get_layer("penultimate").output, name=prefix)


def build(cfg: FusionConfig, grid: int, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """The Keras model on ``{"ecd", "magpie"}``; ``parts`` maps "cnn_magpie"/"cnn2d_se" to
    trained models (untrained defaults are built when absent, for tests)."""
    import keras

    stats = stats or InputStats()
    parts = dict(parts or {})
    parts.setdefault("cnn_magpie", cnn_magpie.build(cnn_magpie.CNNMagpieConfig(), grid, stats))
    parts.setdefault("cnn2d_se", cnn2d_se.build(cnn2d_se.CNN2DSEConfig(width_scale=1 / 16),
                                                grid, stats))
    inputs = {"ecd": keras.Input((grid, grid, grid, 1), name="ecd", dtype="float32"),
              "magpie": keras.Input((MAGPIE_LEN,), name="magpie", dtype="float32")}
    feats = []
    for name in ("cnn_magpie", "cnn2d_se"):
        extractor = _penultimate(parts[name], f"{name}_features")
        extractor.trainable = cfg.train_parts
        feats.append(extractor({k: inputs[k] for k in parts[name].input}))
    x = keras.layers.Concatenate()(feats)
    x = dense_stack(x, cfg.dense)
    return keras.Model(inputs, output_head(x, stats), name="fusion")


SPEC = ModelSpec(name="fusion", inputs=("ecd", "magpie"), config_cls=FusionConfig, build=build,
                 optimizer=adam, is_keras=True, requires=("cnn_magpie", "cnn2d_se"),
                 description="CNN+Magpie and 2D-CNN-SE features fused")
