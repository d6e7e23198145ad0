"""``ecdflow.ensemble.same_state``: a scikit-learn member written as LZMA skops and read back is
the same model; a change to any one fitted number (a leaf, a threshold) is caught, even where a
probe batch of predictions would not reach it."""

import numpy as np
import pytest

from ecdflow.ensemble import load_member, same_state, save_skops


def _models():
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from ecdflow.models.gbm_magpie_volume import GBMConfig, build

    return {"random_forest": RandomForestRegressor(n_estimators=8, random_state=0),
            "hist_gbm": HistGradientBoostingRegressor(max_iter=15, random_state=0),
            "gbm_log10_zoo": build(GBMConfig(max_iter=15), seed=0)}


def _fit(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * 40
    y = 50 + np.abs(x[:, 0]) + rng.normal(size=300)  # positive: the log10 model takes it
    return _models()[name].fit(x, y)


def _trees(est):
    """(nodes, values) arrays of the first tree of a fitted model, as writable views."""
    inner = getattr(est, "regressor_", est)
    if hasattr(inner, "estimators_"):
        tree = inner.estimators_[0].tree_
        return tree.value, "threshold", tree
    nodes = inner._predictors[0][0].nodes
    return nodes, "num_threshold", None


@pytest.mark.parametrize("name", ["random_forest", "hist_gbm", "gbm_log10_zoo"])
def test_skops_round_trip_is_the_same_model(name, tmp_path):
    est = _fit(name)
    save_skops(est, tmp_path / "m.skops")
    assert same_state(est, load_member(str(tmp_path / "m.skops")))


@pytest.mark.parametrize("name", ["random_forest", "hist_gbm", "gbm_log10_zoo"])
@pytest.mark.parametrize("what", ["leaf", "threshold"])
def test_one_changed_number_is_another_model(name, what, tmp_path):
    est = _fit(name)
    save_skops(est, tmp_path / "m.skops")
    other = load_member(str(tmp_path / "m.skops"))
    arr, field, tree = _trees(other)
    if tree is not None:  # random forest: leaf values and thresholds live on the Cython tree
        if what == "leaf":
            tree.value[-1, 0, 0] += 500.0
        else:
            tree.threshold[0] += 1e-9
    elif what == "leaf":
        arr["value"][-1] += 500.0
    else:
        arr[field][0] += 1e-9
    assert not same_state(est, other)
