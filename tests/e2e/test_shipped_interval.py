"""Issue 15's Done-means: `ecdflow predict NaCl.cif` on a fresh clone (empty MLflow store, no
champion, no `make run`) answers from the shipped model with a calibrated interval, the
out-of-domain flag and the model's name; the human table prints rounded numbers."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings  # noqa: E402

FCC = {  # Fm-3m test inputs: (species at 4a, at 4b), a in Å (near room-T values; the cited
    # constants of the published sanity table live in ecdflow/pretrained/sanity.py)
    "NaCl": (["Na", "Cl"], 5.640), "MgO": (["Mg", "O"], 4.211), "Ni": (["Ni"], 3.524),
    # fcc rare-gas solids: elements absent from the training table (Xe, Kr; low-T a)
    "Xe": (["Xe"], 6.13), "Kr": (["Kr"], 5.72),
}
SEEN, UNSEEN = ("NaCl", "MgO", "Ni"), ("Xe", "Kr")


def _cif(name: str) -> str:
    from pymatgen.core import Lattice, Structure

    species, a = FCC[name]
    coords = [[0, 0, 0], [0.5, 0.5, 0.5]][:len(species)]
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), species, coords).to(fmt="cif")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """params.yaml of settings on an empty MLflow store (no registered model, no champion)."""
    import yaml

    tmp = tmp_path_factory.mktemp("fresh")
    s = demo_settings(tmp, model_names={"K_VRH": "t-bulk", "G_VRH": "t-shear"})
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(s.model_dump_json())))
    for name in FCC:
        (tmp / f"{name}.cif").write_text(_cif(name))
    return params, tmp


def _predict(params, files, target, fmt="json"):
    from click.testing import CliRunner

    from ecdflow.cli import cli

    return CliRunner().invoke(cli, ["--params", str(params), "predict", *map(str, files),
                                    "--target", target, "--format", fmt],
                              catch_exceptions=False)


@pytest.mark.parametrize("target,name", [("bulk", "K_VRH"), ("shear", "G_VRH")])
def test_predict_on_a_fresh_store_answers_from_the_shipped_model_with_an_interval(
        cli_env, target, name):
    from ecdflow.pretrained import shipped_for

    params, tmp = cli_env
    ship = shipped_for(name)
    res = _predict(params, [tmp / f"{m}.cif" for m in (*SEEN, *UNSEEN)], target)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output[res.output.index("["):])
    assert len(rows) == len(SEEN) + len(UNSEEN)
    q = json.loads((ship.path / "artifacts" / "calibration.json").read_text())["q"]
    for r in rows:
        assert r["answered_by"] == {"model": ship.name, "version": "shipped",
                                    "model_type": ship.model_type}
        p = r["prediction_gpa"]
        assert r["error"] == "" and math.isfinite(p) and p > 0
        assert r["lower_gpa"] < p < r["upper_gpa"]
        # abs score: the interval is prediction ± q of the shipped calibration, its lower end
        # clipped at 0 GPa (a modulus is positive)
        assert r["upper_gpa"] - p == pytest.approx(q)
        assert r["lower_gpa"] == pytest.approx(max(p - q, 0.0)) and r["lower_gpa"] >= 0
        assert r["coverage"] == 0.9
    by = {Path(r["file"]).stem: r for r in rows}
    for m in SEEN:
        assert by[m]["out_of_domain"] is False and by[m]["ood_reason"] == "", by[m]
    for m in UNSEEN:
        assert by[m]["out_of_domain"] is True
        assert f"element(s) {m} never seen in training" in by[m]["ood_reason"]


def test_shipped_manifest_names_the_registry_calibration_and_domain():
    """The shipped models carry the same artifacts as a registered version (one format)."""
    from ecdflow.pretrained import shipped
    from ecdflow.registry import UQ_ARTIFACTS
    from ecdflow.uncertainty import Domain, conformal_quantile

    for s in shipped():
        art = s.path / "artifacts"
        manifest = json.loads((art / "manifest.json").read_text())
        assert {manifest[k] for k in UQ_ARTIFACTS} == set(UQ_ARTIFACTS)
        cal = json.loads((art / UQ_ARTIFACTS["calibration"]).read_text())
        oof = json.loads((art / "oof_predictions.json").read_text())
        res = [abs(t - p) for t, p in zip(oof["y_true"], oof["y_pred"], strict=True)]
        assert cal["n"] == len(res) == s.card["data"]["rows_with_target"]
        assert cal["q"] == pytest.approx(conformal_quantile(res, cal["coverage"]), abs=1e-3)
        assert cal["q"] == pytest.approx(s.card["interval"]["q_gpa"], abs=1e-3)
        dom = Domain.load(art / UQ_ARTIFACTS["domain"])
        assert len(dom.z) == cal["n"] and "Xe" not in dom.elements and "Na" in dom.elements
        iv = s.card["interval"]
        assert 0.8 < iv["cv_coverage"] < 1 and iv["cv_width_gpa"] > 0


def test_human_table_rounds_the_numbers(cli_env):
    params, tmp = cli_env
    res = _predict(params, [tmp / "NaCl.cif"], "bulk", fmt="table")
    assert res.exit_code == 0, res.output
    body = res.output.splitlines()
    header, row = body[0].split(), body[1]
    cells = dict(zip(header, row.split(), strict=False))
    for col in ("prediction_gpa", "uncertainty_gpa", "lower_gpa", "upper_gpa"):
        assert re.fullmatch(r"-?\d+\.\d", cells[col]), (col, cells[col])
    assert cells["coverage"] == "0.90"
    assert not re.search(r"\d\.\d{3,}", row), row


@pytest.mark.parametrize("value,digits,text", [
    (24.086305, 1, "24.1"), (0.9, 2, "0.90"), (None, 1, "-"), (float("nan"), 1, "-"),
    (float("inf"), 2, "-"), ("x", 1, "-"), (-3.25, 1, "-3.2"), (120, 1, "120.0")])
def test_fmt(value, digits, text):
    from ecdflow.cli.predict import _fmt

    assert _fmt(value, digits) == text


def test_sanity_table_is_what_the_committed_script_writes(tmp_path):
    """docs/results/sanity.md is reproduced by `ecdflow pretrained sanity`, every crystal gets
    a finite prediction inside its interval, and every out-of-domain flag says why."""
    from ecdflow.pretrained.sanity import CRYSTALS, write_sanity

    repo = Path(__file__).resolve().parents[2]
    table = Path("data/fcc/materials.jsonl")
    out = tmp_path / "sanity.md"
    df = write_sanity(repo / table if not table.exists() else table, out)
    assert len(df) == 2 * len(CRYSTALS) and (df.error == "").all()
    assert ((df.lower < df.prediction) & (df.prediction < df.upper)).all()
    ood = df.out_of_domain.astype(bool)
    assert (df.ood_reason[ood] != "").all() and (df.ood_reason[~ood] == "").all()
    assert not ood[df.crystal == "NaCl"].any()
    assert df.wien2k[df.target == "G_VRH"].isna().all()  # dcdft has K only
    assert set(df.crystal[df.wien2k.notna()]) == {"Cu", "Al", "Ag", "Au"}
    committed = (repo / "docs/results/sanity.md").read_text()
    assert out.read_text().replace(str(repo) + "/", "") == committed
