"""Magpie features: shape, cache on disk, named errors."""

import json

import numpy as np
import pytest

from ecdflow.errors import InputError
from ecdflow.features import CACHE_NAME, magpie_features, magpie_labels


def test_shape_labels_and_cache(tmp_path):
    x = magpie_features(["NaCl", "ClNa", "K2PtCl6"], cache_dir=tmp_path)
    assert x.shape == (3, 132) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[1])  # same reduced formula
    labels = magpie_labels()
    assert len(labels) == 132
    assert x[0, labels.index("MagpieData minimum Number")] == 11  # Na
    cache = json.loads((tmp_path / CACHE_NAME).read_text())
    assert set(cache) == {"NaCl", "K2PtCl6"}
    cache["NaCl"] = [1.0] * 132  # a cached value is used as is
    (tmp_path / CACHE_NAME).write_text(json.dumps(cache))
    assert magpie_features(["NaCl"], cache_dir=tmp_path)[0, 0] == 1.0


def test_module_constant_is_lazy_labels():
    import ecdflow.features as f

    assert f.MAGPIE_LABELS == magpie_labels()


@pytest.mark.parametrize("formula,match", [("NaXx", "NaXx"), ("Na(Cl", "does not parse"),
                                           ("", "empty")])
def test_bad_formula_is_named(formula, match):
    with pytest.raises(InputError, match=match):
        magpie_features(["KCl", formula])
