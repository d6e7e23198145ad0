"""The registered version's model card names every input of every model in the zoo (a model
with the volume per atom made registration fail with a KeyError)."""

from __future__ import annotations

import pytest

from ecdflow.model_card import model_card
from ecdflow.models import MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("target", ["K_VRH", "G_VRH"])
def test_model_card_for_every_zoo_model(name, target):
    spec = MODELS[name]
    row = {"rmse": 10.0, "mae": 7.0, "r2": 0.8}
    card = model_card(target, name, {"ecdflow.gate_metric": "rmse"}, ["cv-0", "cv-1"], 2, 60,
                      row, row, spec.inputs)
    first = next(line for line in card.splitlines() if line.startswith("Predicts"))
    words = {"ecd": "charge density", "magpie": "Magpie", "volume_per_atom": "volume per atom"}
    for i in spec.inputs:
        assert words[i] in first, (name, i, first)
    assert f"{name} fold ensemble" in card and "RMSE 10.0 GPa" in card
