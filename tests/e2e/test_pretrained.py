"""Shipped pretrained models: loadable with no training, chosen by `ecdflow predict` when the
registry has no champion, importable into a registry (real MLflow, temporary stores)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "data/fcc/materials.jsonl"


def _nacl(a=5.64):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def fresh(tmp_path):
    """Settings on an empty MLflow store (no registered model, no champion)."""
    return demo_settings(tmp_path, model_names={"K_VRH": "t-bulk", "G_VRH": "t-shear"}), tmp_path


def test_one_shipped_model_per_target_small_and_on_the_committed_table():
    from ecdflow.pretrained import shipped
    from ecdflow.schema import TARGETS

    ships = shipped()
    assert sorted(s.target for s in ships) == sorted(TARGETS)
    md5 = hashlib.md5(TABLE.read_bytes()).hexdigest()
    for s in ships:
        assert s.name == f"ecdflow-{s.model_type}-fcc{s.card['data']['rows']}-{s.target}"
        assert s.card["data"]["table_md5"] == md5, "table changed: run `ecdflow pretrained build`"
        assert s.card["size_bytes"] < 10e6
        assert (s.path / "MLmodel").exists() and (s.path / "MODEL_CARD.md").exists()
        assert s.card["cv"]["n_folds"] == 5 and s.card["n_members"] == 5


@pytest.mark.parametrize("target", ["K_VRH", "G_VRH"])
def test_calibration_residuals_reproduce_the_card(target):
    """The shipped out-of-fold predictions give back the card's pooled RMSE, cover every
    material once, and each fold's members (``member_folds``: one per fold when built, folds x
    repeats when exported), run through the served path, reproduce their fold's out-of-fold
    predictions (two table materials per fold)."""
    import mlflow.pyfunc
    import pandas as pd

    from ecdflow.data.table import read_rows, structure_of
    from ecdflow.ensemble import load_member
    from ecdflow.pretrained import OOF, shipped_for
    from ecdflow.serve import predict_frame

    s = shipped_for(target)
    cal = json.loads((s.path / "artifacts" / OOF).read_text())
    err = np.asarray(cal["y_pred"]) - np.asarray(cal["y_true"])
    assert math.sqrt(float(np.mean(err**2))) == pytest.approx(s.card["cv"]["pooled_rmse"],
                                                              abs=1e-3)
    assert len(set(cal["material_id"])) == len(cal["material_id"]) == \
        s.card["data"]["rows_with_target"]
    folds = s.member_folds
    assert len(folds) == s.card["n_members"] and sorted(set(folds)) == sorted(set(cal["fold"]))
    assert mlflow.pyfunc.load_model(str(s.path)) is not None
    manifest = json.loads((s.path / "artifacts" / "manifest.json").read_text())
    members = [load_member(str(next((s.path / "artifacts").glob(f"{k}.*"))))
               for k in manifest["members"]]
    rows = {r["material_id"]: r for r in read_rows(TABLE)}
    picks = [i for f in sorted(set(folds)) for i in
             [j for j, g in enumerate(cal["fold"]) if g == f][:2]]
    for i in picks:
        fold_members = [m for m, f in zip(members, folds, strict=True) if f == cal["fold"][i]]
        st = structure_of(rows[cal["material_id"][i]])
        out = predict_frame(fold_members, manifest,
                            pd.DataFrame({"input": [st.to_json()], "format": ["json"]}))
        assert out.error[0] == "", out.error[0]
        assert float(out.prediction[0]) == pytest.approx(cal["y_pred"][i], abs=2e-3), \
            (cal["material_id"][i], cal["fold"][i])


def test_predict_without_champion_answers_from_the_shipped_model(fresh):
    from ecdflow.predict import predict_files

    s, tmp = fresh
    (tmp / "NaCl.cif").write_text(_nacl().to(fmt="cif"))
    (tmp / "f.csv").write_text("material_id,formula\nm-1,NaCl\n")
    from ecdflow.pretrained import shipped_for

    ship = shipped_for("K_VRH")
    df = predict_files(s, [tmp / "NaCl.cif", tmp / "f.csv"], "bulk")
    who = df.attrs["answered_by"]
    assert who["version"] == "shipped" and who["model"] == ship.name
    assert who["model"].endswith("-K_VRH") and who["model_type"] == ship.model_type
    assert df.error[0] == "" and math.isfinite(df.prediction_gpa[0])
    assert 5 < df.prediction_gpa[0] < 200
    # a formula has no structure: no density, no volume per atom; the row says which it lacks
    lacks = "a charge density" if "ecd" in ship.card["inputs"] else "the volume per atom"
    assert f"needs {lacks}" in df.error[1] and df.prediction_gpa[1] is None


def test_cli_predict_says_who_answered_and_register_pretrained(fresh):
    import mlflow
    import yaml
    from click.testing import CliRunner

    from ecdflow.cli import cli
    from ecdflow.pretrained import shipped_for

    ship = shipped_for("K_VRH")
    s, tmp = fresh
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(s.model_dump_json())))
    cif = tmp / "NaCl.cif"
    cif.write_text(_nacl().to(fmt="cif"))
    run = CliRunner().invoke
    res = run(cli, ["--params", str(params), "predict", str(cif), "--target", "bulk",
                    "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output[res.output.index("["):])
    assert rows[0]["answered_by"]["version"] == "shipped"
    assert math.isfinite(rows[0]["prediction_gpa"])
    res = run(cli, ["--params", str(params), "predict", str(cif), "--target", "bulk"],
              catch_exceptions=False)
    assert res.exit_code == 0 and f"answered by: {ship.name} shipped" in res.output
    assert "(shipped" not in res.output
    assert f" shipped, model type {ship.model_type}" in res.output

    res = run(cli, ["--params", str(params), "register", "--pretrained", "--target", "bulk"],
              catch_exceptions=False)
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    mv = client.get_model_version_by_alias("t-bulk", "challenger")
    assert mv.tags["ecdflow.pretrained"] == ship.name
    assert mv.tags["ecdflow.model"] == ship.model_type
    assert float(mv.tags["ecdflow.cv_rmse_gpa"]) > 0 and "# Model card" in mv.description
    client.set_registered_model_alias("t-bulk", "champion", mv.version)  # a person promotes
    res = run(cli, ["--params", str(params), "predict", str(cif), "--target", "bulk",
                    "--format", "json"], catch_exceptions=False)
    rows = json.loads(res.output[res.output.index("["):])
    assert rows[0]["answered_by"] == {"model": "t-bulk", "version": str(mv.version),
                                      "model_type": ship.model_type}
    assert math.isfinite(rows[0]["prediction_gpa"])


@pytest.mark.parametrize("target", ["K_VRH", "G_VRH"])
def test_shipped_model_gives_one_answer_per_crystal_whatever_the_file(tmp_path, target):
    """CIF, POSCAR and JSON of NaCl (conventional, primitive, origin on Cl, a 2x1x1 supercell)
    are one crystal: the same volume per atom and, on the conventional cube, the same density
    up to an origin shift, so the shipped model gives them the same modulus. A CHGCAR of the
    model's own procrystal density: the same answer from a model without density input; a
    density model trained on procrystal densities refuses it (one line), and with
    ``allow_density_source_mismatch`` gives the same answer, flagged out of domain."""
    import mlflow.pyfunc
    import pandas as pd

    from ecdflow.chgcar import write_chgcar
    from ecdflow.density import procrystal_density
    from ecdflow.pretrained import shipped_for

    conv = _nacl()
    prim = conv.get_primitive_structure()
    on_cl = conv.copy()
    on_cl.translate_sites(list(range(len(on_cl))), [0.5, 0, 0])
    sup = conv.copy()
    sup.make_supercell([2, 1, 1])
    ship = shipped_for(target)
    manifest = json.loads((ship.path / "artifacts" / "manifest.json").read_text())
    grid = int(manifest["grid"]) or 16
    write_chgcar(tmp_path / "CHGCAR", conv, procrystal_density(
        conv, grid=grid, smearing_A=float(manifest.get("smearing_A") or 0.1)))
    texts = [conv.to(fmt="cif"), prim.to(fmt="cif"), prim.to(fmt="poscar"), conv.to_json(),
             on_cl.to(fmt="cif"), sup.to(fmt="cif")]
    model = mlflow.pyfunc.load_model(str(ship.path))
    out = model.predict(pd.DataFrame({"input": texts}))
    assert (out.error == "").all(), list(out.error)
    p0 = float(out.prediction[0])
    assert np.allclose(out.prediction.astype(float), p0, rtol=1e-6)
    chg = pd.DataFrame({"input": [(tmp_path / "CHGCAR").read_text()]})
    got = model.predict(chg)
    if "ecd" in ship.card["inputs"]:
        assert got.prediction[0] is None and "density source chgcar differs" in got.error[0]
        got = model.predict(chg, params={"allow_density_source_mismatch": True})
        assert got.out_of_domain[0] is True and "density source" in got.ood_reason[0]
    assert got.error[0] == "" and float(got.prediction[0]) == pytest.approx(p0, rel=1e-6)


def test_build_is_reproducible(tmp_path):
    """Two builds from the same (small) table give the same card metrics and byte-identical
    out-of-fold predictions and interval calibration; the card states the table's md5."""
    from ecdflow.pretrained.build import build

    lines = TABLE.read_text().splitlines()[:80]
    table = tmp_path / "materials.jsonl"
    table.write_text("\n".join(lines) + "\n")
    cards = [build(table, tmp_path / f"out{i}", seed=42, targets=("K_VRH",))[0]
             for i in (0, 1)]
    assert cards[0]["cv"] == cards[1]["cv"] and cards[0]["compare"] == cards[1]["compare"]
    assert cards[0]["interval"] == cards[1]["interval"]
    assert cards[0]["data"]["table_md5"] == hashlib.md5(table.read_bytes()).hexdigest()
    for f in ("oof_predictions.json", "calibration.json"):
        cal = [(tmp_path / f"out{i}" / cards[0]["name"] / "artifacts" / f).read_bytes()
               for i in (0, 1)]
        assert cal[0] == cal[1], f
    assert cards[0]["name"] == "ecdflow-rf_magpie_volume-fcc80-K_VRH"
