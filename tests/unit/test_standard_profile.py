"""The `standard` profile: the paper's protocol with 2 CV repeats and 1 LOEO repeat per CNN."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("model", "split", "repeats"), [
    ("cnn3d", "cv-0", 2), ("fusion", "cv-4", 2), ("cnn3d", "loeo-Cs", 1),
    ("cnn2d_se", "loeo-F", 1), ("rf_magpie", "cv-0", 1), ("rf_magpie_volume", "loeo-Cs", 1)])
def test_standard_repeats_per_split_kind(model, split, repeats):
    from ecdflow.config import load_settings
    from ecdflow.train import run_repeats

    assert run_repeats(load_settings(profile="standard"), model, split) == repeats


def test_standard_is_the_paper_protocol_on_the_data_axis():
    from ecdflow.config import load_settings
    from ecdflow.train import run_repeats

    std, paper = load_settings(profile="standard"), load_settings(profile="paper")
    assert std.density.grid == paper.density.grid == 60
    assert std.splits.n_folds == paper.splits.n_folds == 5 and std.splits.folds is None
    assert std.splits.loeo_elements == paper.splits.loeo_elements
    assert len(std.splits.loeo_elements) == 11
    assert std.training.patience < std.training.epochs
    assert "rf_magpie_volume" in std.models.enabled
    assert run_repeats(paper, "cnn3d", "loeo-Cs") == paper.training.repeats == 5
