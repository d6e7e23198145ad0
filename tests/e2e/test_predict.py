"""`ecdflow predict` and the pyfunc on structure, CHGCAR and bad input (real MLflow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402

pytestmark = pytest.mark.slow


def _nacl(a=5.64):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    from ecdflow import registry

    tmp = tmp_path_factory.mktemp("predict")
    s = demo_settings(tmp)
    pid = make_pipeline_run(s)
    registry.register_best(s, pid, "K_VRH")
    registry.promote(s, "bulk")
    return s, tmp


def test_predict_files_good_and_bad(champion):
    from ecdflow.predict import predict_files

    s, tmp = champion
    nacl = _nacl()
    (tmp / "NaCl.cif").write_text(nacl.to(fmt="cif"))
    (tmp / "POSCAR").write_text(_nacl(5.0).to(fmt="poscar"))
    (tmp / "s.json").write_text(nacl.to_json())
    (tmp / "junk.cif").write_text("this is not a crystal\n")
    files = [tmp / "NaCl.cif", tmp / "POSCAR", tmp / "s.json", tmp / "junk.cif", tmp / "nope.cif"]
    df = predict_files(s, files, "bulk")
    assert list(df.columns) == ["file", "target", "formula", "prediction_gpa", "uncertainty_gpa",
                                "lower_gpa", "upper_gpa", "coverage", "out_of_domain",
                                "ood_reason", "error"]
    good = df.iloc[:3]
    assert (good.error == "").all() and (good.formula == "NaCl").all()
    assert good.prediction_gpa.between(1, 600).all() and (good.uncertainty_gpa >= 0).all()
    assert (good.lower_gpa < good.prediction_gpa).all()
    assert (good.prediction_gpa < good.upper_gpa).all() and (good.coverage == 0.9).all()
    seen = {e for ln in Path(s.paths.materials).read_text().splitlines() if ln.strip()
            for e in json.loads(ln)["elements"]}
    assert "Na" not in seen and "Cl" in seen  # the demo set holds no sodium compound
    assert all(v is True for v in good.out_of_domain)
    assert (good.ood_reason.str.startswith("element(s) Na never seen in training")).all()
    assert df.lower_gpa[3] is None and df.coverage[4] is None and df.out_of_domain[3] is None
    assert good.prediction_gpa.iloc[0] == pytest.approx(good.prediction_gpa.iloc[2])
    assert df.error[3].startswith(str(tmp / "junk.cif")) and "not a readable CIF" in df.error[3]
    assert df.prediction_gpa[3] is None
    assert df.error[4] == f"{tmp / 'nope.cif'}: no such file"


def test_predict_cli_json_and_unknown_model(champion, tmp_path, monkeypatch):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    s, tmp = champion
    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(s.model_dump_json())))
    cif = tmp_path / "NaCl.cif"
    cif.write_text(_nacl().to(fmt="cif"))
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, ["--params", str(params), "predict", str(cif), "--target",
                                   "bulk", "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output[res.output.index("["):])
    assert rows[0]["formula"] == "NaCl" and rows[0]["prediction_gpa"] > 0
    assert rows[0]["lower_gpa"] < rows[0]["prediction_gpa"] < rows[0]["upper_gpa"]
    assert rows[0]["coverage"] == 0.9 and rows[0]["out_of_domain"] is True
    res = CliRunner().invoke(cli, ["--params", str(params), "predict", str(cif), "--target",
                                   "bulk"], catch_exceptions=False)
    assert res.exit_code == 0 and "lower_gpa" in res.output and "out_of_domain" in res.output
    code = run_main(cli, ["--params", str(params), "predict", str(cif), "--target", "bulk",
                          "--model-uri", "models:/no-such-model@champion"])
    assert code == 2


def test_pyfunc_ecd_model_on_structure_and_chgcar(tmp_path):
    """A Keras ECD ensemble (trained on procrystal densities) served as the pyfunc: a CHGCAR
    is refused by default (density source differs); allowed, it is predicted, flagged out of
    domain, and agrees with the CIF."""
    import keras
    import mlflow

    from ecdflow.chgcar import write_chgcar
    from ecdflow.cube import conventional_cell
    from ecdflow.density import procrystal_density
    from ecdflow.serve import ModulusEnsemble, signature

    grid = 8
    paths = {}
    for i, scale in enumerate((1000.0, 1100.0)):  # two members: mean density x scale (GPa)
        inp = keras.Input((grid, grid, grid, 1), name="ecd")
        out = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(scale),
                                 use_bias=False)(keras.layers.GlobalAveragePooling3D()(inp))
        paths[f"member_{i}"] = str(tmp_path / f"m{i}.keras")
        keras.Model(inp, out).save(paths[f"member_{i}"])
    manifest = {"target": "K_VRH", "model_type": "cnn3d", "inputs": ["ecd"], "grid": grid,
                "smearing_A": 0.1, "log_target": False, "members": ["member_0", "member_1"],
                "density_source": {"kind": "procrystal", "grid": grid, "smearing_A": 0.1}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    mlflow.pyfunc.save_model(str(tmp_path / "pyfunc"), python_model=ModulusEnsemble(),
                             artifacts={"manifest": str(tmp_path / "manifest.json"), **paths},
                             signature=signature(), pip_requirements=["mlflow"])
    model = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    nacl = _nacl()
    conv = conventional_cell(nacl)
    chg = tmp_path / "CHGCAR"
    write_chgcar(chg, conv, procrystal_density(conv, grid=16, smearing_A=0.1))
    frame = pd.DataFrame({"input": [nacl.to(fmt="cif"), chg.read_text(), "{bad json"],
                          "format": ["", "chgcar", "json"]})
    strict = model.predict(frame)
    assert strict.error[0] == "" and strict.prediction[1] is None
    assert strict.error[1] == ("row 1: density source chgcar differs from the model's training "
                               "density (procrystal); refused (set "
                               "allow_density_source_mismatch to predict, flagged)")
    df = model.predict(frame, params={"allow_density_source_mismatch": True})
    mean_rho = float(procrystal_density(nacl, grid=grid).mean())
    assert df.error[0] == "" and df.error[1] == ""
    assert df.out_of_domain[1] is True and "density source chgcar" in df.ood_reason[1]
    assert df.out_of_domain[0] is None and df.lower[0] is None  # no calibration, no domain
    assert df.prediction[0] == pytest.approx(1050.0 * mean_rho, rel=1e-4)
    assert df.uncertainty[0] == pytest.approx(50.0 * mean_rho, rel=1e-4)
    assert df.prediction[1] == pytest.approx(df.prediction[0], rel=0.05)
    assert df.error[2].startswith("row 2: bad JSON") and df.prediction[2] is None
