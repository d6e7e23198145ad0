"""Fusion: pre-trained CNN+Magpie and 2D-CNN-SE+ECD, penultimate outputs concatenated.

The two parts' 32-wide "penultimate" layers (64 together) feed Dense 128 -> 64 -> 32 -> 1;
Adam 1e-3, MAE loss. The parts are frozen by default (``train_parts``); ``ecdflow.train``
supplies them trained on the same target/split/repeat (see ``train_one``).

The model is built as two pieces, :func:`extractor` (the frozen parts: ``{"ecd", "magpie"}``
-> (batch, 64)) and :func:`head` ((batch, 64) -> (batch, 1) GPa), joined by :func:`assemble`.
With frozen parts, ``ecdflow.train`` computes the extractor's output once per material (and
symmetry operation) and trains only the head on it: the same function as training the whole
graph with frozen parts (no dropout or batch normalisation in the parts), without running
the 2D-CNN-SE forward pass every epoch.
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


PARTS = ("cnn_magpie", "cnn2d_se")
FEATURES = "part_features"
"""Input name of :func:`head`: the parts' concatenated penultimate outputs (unitless)."""


def default_parts(grid: int, stats: InputStats | None = None) -> dict:
    """Untrained parts (for tests and shape checks)."""
    stats = stats or InputStats()
    return {"cnn_magpie": cnn_magpie.build(cnn_magpie.CNNMagpieConfig(), grid, stats),
            "cnn2d_se": cnn2d_se.build(cnn2d_se.CNN2DSEConfig(width_scale=1 / 16), grid,
                                       stats)}


def extractor(parts: dict, grid: int, trainable: bool = False) -> Any:
    """The parts cut at their "penultimate" layers, side by side: inputs ``ecd``
    (grid, grid, grid, 1) e/Å^3 and ``magpie`` (132,) -> (batch, 64)."""
    import keras

    inputs = {"ecd": keras.Input((grid, grid, grid, 1), name="ecd", dtype="float32"),
              "magpie": keras.Input((MAGPIE_LEN,), name="magpie", dtype="float32")}
    feats = []
    for name in PARTS:
        ext = _penultimate(parts[name], f"{name}_features")
        ext.trainable = trainable
        feats.append(ext({k: inputs[k] for k in parts[name].input}))
    return keras.Model(inputs, keras.layers.Concatenate()(feats), name="fusion_parts")


def head(cfg: FusionConfig, width: int, stats: InputStats | None = None) -> Any:
    """Dense ``cfg.dense`` then the output: input ``part_features`` (batch, ``width``) ->
    (batch, 1) in target space."""
    import keras

    inp = keras.Input((width,), name=FEATURES, dtype="float32")
    return keras.Model({FEATURES: inp},
                       output_head(dense_stack(inp, cfg.dense), stats or InputStats()),
                       name="fusion_head")


def assemble(ext: Any, top: Any) -> Any:
    """The served fusion model: ``top(ext(inputs))`` on ``{"ecd", "magpie"}``."""
    import keras

    inputs = {k: keras.Input(t.shape[1:], name=k, dtype="float32")
              for k, t in ext.input.items()}
    return keras.Model(inputs, top({FEATURES: ext(inputs)}), name="fusion")


def build(cfg: FusionConfig, grid: int, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """The Keras model on ``{"ecd", "magpie"}``; ``parts`` maps "cnn_magpie"/"cnn2d_se" to
    trained models (untrained defaults are built when absent, for tests)."""
    parts = dict(parts or {})
    if any(name not in parts for name in PARTS):
        parts = {**default_parts(grid, stats), **parts}
    ext = extractor(parts, grid, trainable=cfg.train_parts)
    return assemble(ext, head(cfg, int(ext.output.shape[-1]), stats))


SPEC = ModelSpec(name="fusion", inputs=("ecd", "magpie"), config_cls=FusionConfig, build=build,
                 optimizer=adam, is_keras=True, requires=("cnn_magpie", "cnn2d_se"),
                 description="CNN+Magpie and 2D-CNN-SE features fused")
