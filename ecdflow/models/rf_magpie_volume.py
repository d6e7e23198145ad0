"""RF + Magpie + volume per atom: a random forest of 50 trees on the 132 Magpie features and
the volume per atom (Å^3/atom), issue 15's baseline ("does the density add anything beyond
composition and volume?"). Feature matrix: (n, 133), columns in ``schema.TABULAR_INPUTS`` order.
A record without a structure has no volume, so this model is skipped for it (like the density
models)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import InputStats, ModelSpec
from ecdflow.models.rf_magpie import RFMagpieConfig
from ecdflow.schema import INPUT_ECD, INPUT_MAGPIE, INPUT_VOLUME


class RFMagpieVolumeConfig(RFMagpieConfig):
    """Random-forest hyper-parameters (50 trees as rf_magpie; ``max_depth`` None = unlimited)."""

    max_depth: int | None = Field(None, ge=1)


def build(cfg: RFMagpieVolumeConfig, grid: int = 0, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """An unfitted ``RandomForestRegressor`` (inputs: Magpie + volume (n, 133); target GPa
    or log10 GPa)."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=cfg.n_estimators, max_features=cfg.max_features,
                                 min_samples_leaf=cfg.min_samples_leaf, max_depth=cfg.max_depth,
                                 n_jobs=cfg.n_jobs, random_state=seed)


SPEC = ModelSpec(name="rf_magpie_volume", inputs=(INPUT_MAGPIE, INPUT_VOLUME),
                 config_cls=RFMagpieVolumeConfig, build=build, optimizer=None, is_keras=False,
                 description="Random forest (50 trees) + Magpie + volume per atom")


SPEC_ECDINV = ModelSpec(
    name="rf_magpie_volume_ecdinv", inputs=(INPUT_ECD, INPUT_MAGPIE, INPUT_VOLUME),
    config_cls=RFMagpieVolumeConfig, build=build, optimizer=None, is_keras=False,
    description="Random forest (50 trees) + Magpie + volume + Fourier-orbit density invariants")
"""The same forest on (n, 133 + 55): the ``ecd`` input enters as its Fourier-orbit invariants
(``ecdflow.density_invariants`` via ``ecdflow.features.tabular_matrix``, training and serving
alike); the best density-based candidate for G_VRH (docs/results/beyond.md, ``rf_mv_inv``)."""
