"""gbm_magpie_volume_ecdinv and rf_magpie_volume_ecdinv (issue 15's models beyond the paper,
the Fourier-orbit density invariants with Magpie + volume) through the training path
(``train_one`` on tiny records with a 20^3 procrystal density) and the serving path
(``serve.predict_frame`` on CIF text): the served model computes the same features as
training, and a missing or unusable density is refused, never predicted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_rows, demo_settings  # noqa: E402

pytestmark = pytest.mark.slow
GRID = 20
MODELS_ECDINV = {"gbm_magpie_volume_ecdinv": {"max_iter": 30, "min_samples_leaf": 3},
                 "rf_magpie_volume_ecdinv": {"n_estimators": 8}}
"""The two density-invariant models and small settings for them."""


def _write(out: Path, rows: list[dict], grid: int, dtype: str = "float32") -> str:
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density
    from ecdflow.features import magpie_features
    from ecdflow.records import build_manifest, encode_example, write_manifest, write_records

    mag = magpie_features([r["formula"] for r in rows])
    ecd = [procrystal_density(structure_of(r), grid) if grid else None for r in rows]
    shards = write_records((encode_example(r, e, m, dtype) for r, e, m in
                            zip(rows, ecd, mag, strict=True)), str(out), 1, "")
    write_manifest(str(out), build_manifest(str(out), shards, count=len(rows), grid=grid,
                                            dtype=dtype, compression="", extra={
                                                "has_density": bool(grid),
                                                "has_volume": True}))
    return str(out)


@pytest.fixture(scope="module", params=sorted(MODELS_ECDINV))
def trained(request, tmp_path_factory):
    """Settings (small model), the records, the rows, train_one's result on cv-0, the logged
    model loaded back and its name."""
    import mlflow

    from ecdflow.train import train_one

    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    s = demo_settings(tmp)
    s = s.model_copy(update={"models": s.models.model_copy(update={
        "params": {name: MODELS_ECDINV[name]}})})
    rows = demo_rows(40)
    rdir = _write(tmp / "r", rows, GRID)
    res = train_one(s, name, "K_VRH", "cv-0", records_dir=rdir)
    return s, rdir, rows, res, mlflow.sklearn.load_model(res["model_uri"]), name


def test_trains_on_records_with_the_invariants(trained):
    from ecdflow.schema import ECD_INVARIANTS_LEN, MAGPIE_LEN

    _, _, _, res, model, _ = trained
    assert np.isfinite(res["test_rmse_gpa"]) and res["test_rmse_gpa"] > 0
    assert model.n_features_in_ == MAGPIE_LEN + 1 + ECD_INVARIANTS_LEN


def test_served_features_and_predictions_equal_trainings(trained):
    from ecdflow.data.table import structure_of
    from ecdflow.datasets import tabular_arrays
    from ecdflow.features import tabular_matrix
    from ecdflow.models import get_spec
    from ecdflow.serve import predict_frame
    from ecdflow.serve_input import build_inputs, parse_input

    _, rdir, rows, _, model, name = trained
    inputs = get_spec(name).inputs
    pick = rows[::7]
    ids = [r["material_id"] for r in pick]
    mids, x_train, _ = tabular_arrays(rdir, "K_VRH", inputs, ids, False)
    x_train = x_train[[mids.index(m) for m in ids]]
    cifs = [structure_of(r).to(fmt="cif") for r in pick]
    parsed = [parse_input(c, "cif", GRID, True, m) for c, m in zip(cifs, ids, strict=True)]
    x, errors = build_inputs(parsed, list(inputs), GRID, 0.1, ids)
    assert errors == [""] * len(pick)
    x_served = tabular_matrix(x, inputs)
    assert x_served.shape == x_train.shape
    assert np.allclose(x_served, x_train, rtol=1e-4, atol=1e-6)
    manifest = {"inputs": list(inputs), "grid": GRID, "smearing_A": 0.1, "log_target": False,
                "density_source": {"kind": "procrystal"}}
    df = predict_frame([model], manifest, pd.DataFrame({"input": cifs, "source": ids}))
    assert list(df.error) == [""] * len(pick)
    want = model.predict(x_train)
    assert np.allclose(df.prediction.astype(float), want, rtol=1e-3)


class _Recorder:
    """A scikit-learn stand-in that keeps the feature matrix the served path gives it."""

    def get_params(self):
        return {}

    def predict(self, x):
        self.x = np.asarray(x)
        return np.full(len(x), 100.0)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_served_density_is_the_one_the_records_gave_training(tmp_path, dtype):
    """Records store the density as ``records.dtype``; a version's manifest names it
    (``ecd_dtype``) and the served path rounds its density the same way, so a structure's
    served features equal, to the bit, the training features read from the records (without
    the key, float16 storage makes them differ: enough to cross a tree's threshold)."""
    from ecdflow.data.table import structure_of
    from ecdflow.datasets import tabular_arrays
    from ecdflow.serve import predict_frame

    inputs = ("ecd", "magpie", "volume_per_atom")
    rows = demo_rows(12)
    rdir = _write(tmp_path / "r", rows, GRID, dtype)
    ids = [r["material_id"] for r in rows]
    mids, x_train, _ = tabular_arrays(rdir, "K_VRH", inputs, ids, False)
    x_train = x_train[[mids.index(m) for m in ids]]
    texts = pd.DataFrame({"input": [structure_of(r).to_json() for r in rows]})
    manifest = {"inputs": list(inputs), "grid": GRID, "smearing_A": 0.1, "log_target": False,
                "density_source": {"kind": "procrystal"}}
    served = {}
    for key in ("ecd_dtype", None):
        member = _Recorder()
        df = predict_frame([member], {**manifest, **({key: dtype} if key else {})}, texts)
        assert list(df.error) == [""] * len(rows)
        served[key] = member.x
    np.testing.assert_array_equal(served["ecd_dtype"], x_train)
    assert np.array_equal(served[None], x_train) == (dtype == "float32")


def test_a_formula_is_refused_when_serving(trained):
    from ecdflow.models import get_spec
    from ecdflow.serve import predict_frame

    model, name = trained[4], trained[5]
    manifest = {"inputs": list(get_spec(name).inputs), "grid": GRID, "smearing_A": 0.1,
                "log_target": False}
    df = predict_frame([model], manifest, pd.DataFrame({"input": ["NaCl"]}))
    assert df.prediction[0] is None and "needs a charge density" in df.error[0]


def test_inputs_without_a_density_are_refused(trained):
    from ecdflow.errors import InputError
    from ecdflow.features import tabular_matrix
    from ecdflow.models import get_spec

    inputs = get_spec(trained[5]).inputs
    x = {"magpie": np.zeros((2, 132), np.float32), "volume_per_atom": np.ones((2, 1))}
    with pytest.raises(InputError, match="reads ecd, which the input lacks"):
        tabular_matrix(x, inputs)
    bad = {**x, "ecd": np.full((2, GRID, GRID, GRID, 1), np.nan, np.float32)}
    with pytest.raises(InputError, match="non-finite"):
        tabular_matrix(bad, inputs)


@pytest.mark.parametrize("model", sorted(MODELS_ECDINV))
@pytest.mark.parametrize("grid, match", [(0, "no density"), (8, "too coarse")])
def test_training_without_a_usable_density_is_refused(tmp_path, grid, match, model):
    from ecdflow.errors import EcdflowError
    from ecdflow.records import read_manifest
    from ecdflow.train import density_skip, train_one

    s = demo_settings(tmp_path)
    rdir = _write(tmp_path / "r", demo_rows(12), grid)
    if grid == 0:
        assert "records carry no density" in density_skip(model, read_manifest(rdir))
    with pytest.raises(EcdflowError, match=match):
        train_one(s, model, "K_VRH", "cv-0", records_dir=rdir)


def test_registered_version_answers_a_structure(tmp_path):
    """Registration of the density-invariant model (it could be a run's best) and its version's
    answer for a CIF: calibration, model card and the served invariants work together."""
    import mlflow

    from ecdflow import tracking as tr
    from ecdflow.registry import register_best
    from ecdflow.train import train_one

    name = "gbm_magpie_volume_ecdinv"
    s = demo_settings(tmp_path)
    s = s.model_copy(update={"models": s.models.model_copy(update={
        "params": {name: MODELS_ECDINV[name]}})})
    rows = demo_rows(40)
    rdir = _write(tmp_path / "r", rows, GRID)
    parent = tr.start_parent_run(s, "pr-inv")
    for split in ("cv-0", "cv-1"):
        train_one(s, name, "K_VRH", split, records_dir=rdir, parent_run_id=parent,
                  pipeline_run_id="pr-inv")
    mv = register_best(s, "pr-inv", "K_VRH")
    assert mv.tags["ecdflow.model"] == name and "charge density" in mv.description
    model = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    # the served density is rounded as the training records stored it (float32 here, whatever
    # the settings' records.dtype)
    from ecdflow.records import read_manifest

    assert model.unwrap_python_model().manifest["ecd_dtype"] == read_manifest(rdir)["dtype"]
    from pymatgen.core import Lattice, Structure

    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"],
                                    [[0, 0, 0], [0.5, 0.5, 0.5]])
    x = pd.DataFrame({"input": [mgo.to(fmt="cif")], "format": ["cif"]})
    row = model.predict(x).iloc[0]
    assert row["error"] == "" and np.isfinite(row["prediction"]) and row["prediction"] > 0
    assert row["lower"] <= row["prediction"] <= row["upper"]
    # shipped (`ecdflow pretrained export`): skops members, the same density dtype, one answer
    import json

    from ecdflow.pretrained.export import export_version

    table = tmp_path / "materials.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ship = export_version(s, "K_VRH", "pr-inv", out_dir=tmp_path / "shipped", table=table)
    local = mlflow.pyfunc.load_model(str(ship.path))
    assert local.unwrap_python_model().manifest["ecd_dtype"] == read_manifest(rdir)["dtype"]
    assert "manifest_added" not in ship.card and len(list(ship.path.rglob("*.skops"))) == 2
    got = local.predict(x).iloc[0]
    assert got["prediction"] == pytest.approx(row["prediction"], rel=1e-9)
    assert got["upper"] == pytest.approx(row["upper"], rel=1e-9)
