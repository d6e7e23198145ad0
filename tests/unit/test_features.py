"""Magpie features: identical to matminer, strict formulas, non-finite rows named."""

import json
from pathlib import Path

import numpy as np
import pytest

from ecdflow.errors import InputError
from ecdflow.features import featurize, magpie_features, magpie_labels

REPO = Path(__file__).resolve().parents[2]


def _table_formulas(n: int) -> list[str]:
    rows = (REPO / "data/fcc/materials.jsonl").read_text().splitlines()
    return [json.loads(ln)["formula"] for ln in rows[::max(1, len(rows) // n)]][:n]


def test_vectorised_features_equal_matminer():
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition

    ref = ElementProperty.from_preset("magpie", impute_nan=False)
    formulas = _table_formulas(60) + ["Na0.5K0.5Cl", "Ca(OH)2", "Cs2NaScCl6", "Fe", "Al2O3"]
    x = magpie_features(formulas)
    want = np.array([ref.featurize(Composition(f)) for f in formulas], dtype=np.float32)
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-6)


def test_shape_labels_and_same_reduced_formula():
    x = magpie_features(["NaCl", "ClNa", "K2PtCl6"])
    assert x.shape == (3, 132) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[1])
    labels = magpie_labels()
    assert len(labels) == 132
    assert x[0, labels.index("MagpieData minimum Number")] == 11  # Na


def test_module_constant_is_lazy_labels():
    import ecdflow.features as f

    assert f.MAGPIE_LABELS == magpie_labels()


@pytest.mark.parametrize("formula,match", [
    ("NaXx", "unknown element Xx"), ("Na(Cl", "unbalanced"), ("", "empty"),
    ("NaCl2x", "lowercase"), ("nacl", "lowercase"), ("D2O", "isotope"), ("Na+Cl", "'\\+'")])
def test_bad_formula_is_named(formula, match):
    with pytest.raises(InputError, match=match):
        magpie_features(["KCl", formula])


@pytest.mark.parametrize("formula,element", [("Ar", "Ar"), ("Ne", "Ne"), ("NaAr", "Ar"),
                                             ("He", "He")])
def test_featurize_names_the_element_without_data(formula, element):
    x, errors = featurize(["NaCl", formula, "nacl", "UO2"], where=["r1", "r2", "r3", "r4"])
    assert errors[0] == "" and np.all(np.isfinite(x[0]))
    assert errors[1].startswith("r2: ") and f"{element} has no Magpie" in errors[1]
    assert "Electronegativity" in errors[1] and np.all(np.isnan(x[1]))
    assert errors[2].startswith("r3: bad formula")
    assert "excluded element U" in errors[3]
