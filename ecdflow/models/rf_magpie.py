"""RF + Magpie: a random forest of 50 trees on the 132 Magpie features (paper, Table 2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import InputStats, ModelConfig, ModelSpec


class RFMagpieConfig(ModelConfig):
    """Random-forest hyper-parameters (paper: 50 trees; the rest scikit-learn defaults)."""

    n_estimators: int = Field(50, ge=1)
    max_features: float | str | None = 1.0
    min_samples_leaf: int = Field(1, ge=1)
    n_jobs: int = 2


def build(cfg: RFMagpieConfig, grid: int = 0, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """An unfitted ``RandomForestRegressor`` (inputs: Magpie (n, 132); target GPa or log10)."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=cfg.n_estimators, max_features=cfg.max_features,
                                 min_samples_leaf=cfg.min_samples_leaf, n_jobs=cfg.n_jobs,
                                 random_state=seed)


SPEC = ModelSpec(name="rf_magpie", inputs=("magpie",), config_cls=RFMagpieConfig, build=build,
                 optimizer=None, is_keras=False, description="Random forest (50 trees) + Magpie")
