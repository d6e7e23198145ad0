"""Histogram gradient boosting on Magpie + volume per atom + the Fourier-orbit density
invariants: issue 15's "one model beyond the paper", the best density-based candidate for K_VRH
(docs/results/beyond.md, ``hgb_mv_inv_log``).

``gbm_magpie_volume_ecdinv`` reads the ``ecd`` input, which a tabular model gets as its
``ECD_INVARIANTS_LEN`` origin- and rotation-invariant Fourier-orbit features
(``ecdflow.density_invariants``, through ``ecdflow.features.tabular_matrix``, the one path of
training and serving): feature matrix (n, 132 + 1 + 55). With ``log10_target`` (the default,
as measured) the booster fits log10 of the modulus inside the estimator
(``TransformedTargetRegressor``) and predicts GPa, so training, metrics and serving need no
other switch (leave ``training.log_target`` off with it).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ecdflow.models.base import InputStats, ModelConfig, ModelSpec
from ecdflow.schema import INPUT_ECD, INPUT_MAGPIE, INPUT_VOLUME


def _exp10(x: Any) -> Any:
    import numpy as np

    return np.power(10.0, x)


class GBMConfig(ModelConfig):
    """Booster hyper-parameters (fixed before measuring; docs/results/beyond.md)."""

    max_iter: int = Field(400, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    max_leaf_nodes: int = Field(31, ge=2)
    min_samples_leaf: int = Field(20, ge=1)
    l2_regularization: float = Field(0.0, ge=0)
    log10_target: bool = True


def build(cfg: GBMConfig, grid: int = 0, stats: InputStats | None = None,
          parts: dict | None = None, seed: int = 0) -> Any:
    """An unfitted ``HistGradientBoostingRegressor`` (no early stopping; seeded), wrapped in a
    ``TransformedTargetRegressor`` (log10 / 10**) when ``cfg.log10_target``; predicts in the
    training-target space (GPa, or log10 GPa with ``training.log_target``)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    est = HistGradientBoostingRegressor(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes, min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=cfg.l2_regularization, early_stopping=False, random_state=seed)
    if not cfg.log10_target:
        return est
    import numpy as np
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(regressor=est, func=np.log10, inverse_func=_exp10,
                                      check_inverse=False)


SPEC = ModelSpec(
    name="gbm_magpie_volume_ecdinv", inputs=(INPUT_ECD, INPUT_MAGPIE, INPUT_VOLUME),
    config_cls=GBMConfig, build=build, optimizer=None, is_keras=False,
    description="Gradient boosting + Magpie + volume + Fourier-orbit density invariants")
