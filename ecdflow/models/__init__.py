"""Model registry: name -> :class:`ModelSpec`. A new model is one file plus one line here.

May import: Keras / scikit-learn and the ground floor (``ecdflow.schema``, ``errors``); never
records, training or tracking (models are built from a config, a grid and input statistics).
"""

from __future__ import annotations

from ecdflow.errors import EcdflowError
from ecdflow.models import (
    cnn2d_se,
    cnn3d,
    cnn_magpie,
    fusion,
    gbm_magpie_volume,
    rf_magpie,
    rf_magpie_volume,
)
from ecdflow.models.base import InputStats, ModelConfig, ModelSpec

MODELS: dict[str, ModelSpec] = {
    m.SPEC.name: m.SPEC for m in (rf_magpie, cnn_magpie, cnn3d, cnn2d_se, fusion, rf_magpie_volume)
}
MODELS.update({s.name: s for s in (gbm_magpie_volume.SPEC, rf_magpie_volume.SPEC_ECDINV)})

__all__ = ["MODELS", "InputStats", "ModelConfig", "ModelSpec", "get_spec"]


def get_spec(name: str) -> ModelSpec:
    """The registered model ``name``; unknown names raise a one-line error listing valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise EcdflowError(f"unknown model '{name}' (valid: {', '.join(MODELS)})") from None
