"""External references: loaders, de-duplication against training data, scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ecdflow import external
from ecdflow.config import load_settings


def test_dcdft_reference_counts_and_units():
    ref = external.load_dcdft_reference()
    assert len(ref) == 11 and set(ref.formula) >= {"Al", "Cu", "Au", "Pt", "Pb"}
    k = ref.set_index("formula").K_VRH
    # WIEN2k B0 in GPa (not eV/Å^3 = 160 GPa units): Al ~78, Cu ~141, Ir ~350
    assert 70 < k["Al"] < 85 and 130 < k["Cu"] < 150 and 330 < k["Ir"] < 370
    assert ref.G_VRH.isna().all()
    from pymatgen.core import Structure

    al = Structure.from_str(ref.set_index("formula").structure["Al"], fmt="json")
    assert len(al) == 1 and al.volume == pytest.approx(16.48, abs=0.05)  # Å^3/atom, WIEN2k


def test_experimental_reference_units():
    ref = external.load_experimental_reference().set_index("formula")
    assert 9 <= len(ref) <= 11
    assert ref.K_VRH["Al"] == pytest.approx(76.0) and ref.G_VRH["Al"] == pytest.approx(26.0)
    assert ref.K_VRH["Cu"] == pytest.approx(140.0) and ref.G_VRH["Au"] == pytest.approx(27.0)
    assert math.isnan(ref.K_VRH["Sr"]) and ref.G_VRH["Sr"] == pytest.approx(6.1)


def test_remove_seen_by_reduced_formula():
    ref = external.load_dcdft_reference()
    kept, removed = external.remove_seen(ref, {"Cu", "Al", "NaCl"})
    assert sorted(removed.formula) == ["Al", "Cu"] and len(kept) == 9
    assert not set(kept.formula) & {"Al", "Cu"}


def test_training_formulas_from_materials_table(tmp_path):
    table = tmp_path / "m.jsonl"
    table.write_text("".join(json.dumps({"formula": f}) + "\n" for f in ["Na2Cl2", "Cu"]))
    s = load_settings(overrides={"paths": {"materials": str(table)}})
    assert external.training_formulas(s) == {"NaCl", "Cu"}


class _Exact:
    """A model that predicts the reference exactly (looks up K by the structure's formula)."""

    def __init__(self, ref):
        self.k = dict(zip(ref.structure, ref.K_VRH, strict=True))

    def predict(self, df):
        y = [self.k[s] for s in df["input"]]
        return pd.DataFrame({"prediction": y, "uncertainty": 0.0, "error": ""})


def test_exact_model_scores_r2_one():
    ref = external.load_dcdft_reference()
    pred = external.predict_reference(_Exact(ref), ref)
    sc = external.score(pred.K_VRH, pred.prediction)
    assert sc["n"] == 11 and sc["r2"] == pytest.approx(1.0) and sc["rmse_gpa"] == 0.0
    off = external.score(pred.K_VRH, pred.prediction + 10.0)
    assert off["mae_gpa"] == pytest.approx(10.0) and off["r2"] < 1.0
    assert external.score([1.0, np.nan], [1.0, 2.0])["n"] == 1
    assert external.worst(pred.assign(prediction=pred.K_VRH + np.arange(11)), "K_VRH", 2)[0][
        "abs_error_gpa"] == pytest.approx(10.0)
