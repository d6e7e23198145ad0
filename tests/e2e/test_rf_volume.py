"""The rf_magpie_volume baseline through the training path: records carry the volume per
atom (from the structure; NaN and refused for a composition-only row), and the model trains
and is logged like rf_magpie."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_rows, demo_settings  # noqa: E402

pytestmark = pytest.mark.slow


def _write(out: Path, rows: list[dict], has_volume: bool) -> str:
    from ecdflow.features import magpie_features
    from ecdflow.records import build_manifest, encode_example, write_manifest, write_records

    mag = magpie_features([r["formula"] for r in rows])
    shards = write_records((encode_example(r, None, m, "float32") for r, m in
                            zip(rows, mag, strict=True)), str(out), 1, "")
    write_manifest(str(out), build_manifest(str(out), shards, count=len(rows), grid=0,
                                            dtype="float32", compression="", extra={
                                                "has_density": False,
                                                "has_volume": has_volume}))
    return str(out)


def test_records_carry_the_volume_and_a_composition_row_has_none(tmp_path):
    from ecdflow.data.table import structure_of
    from ecdflow.datasets import dataset_arrays
    from ecdflow.errors import InputError
    from ecdflow.features import volume_per_atom

    rows = demo_rows(12)
    comp = {"material_id": "c-1", "formula": "NaCl", "elements": ["Na", "Cl"], "K_VRH": 25.0}
    rdir = _write(tmp_path / "r", [*rows, comp], has_volume=True)
    mids, x, _ = dataset_arrays(rdir, "K_VRH", ("magpie", "volume_per_atom"),
                                [r["material_id"] for r in rows] + ["c-1"], False)
    got = dict(zip(mids, x["volume_per_atom"].reshape(-1), strict=True))
    for r in rows:
        assert got[r["material_id"]] == pytest.approx(volume_per_atom(structure_of(r)),
                                                      rel=1e-6)
    assert math.isnan(got["c-1"])
    old = _write(tmp_path / "old", rows, has_volume=False)
    with pytest.raises(InputError, match="no volume per atom"):
        dataset_arrays(old, "K_VRH", ("volume_per_atom",), [rows[0]["material_id"]], False)


def test_rf_magpie_volume_trains_on_records(tmp_path):
    import mlflow

    from ecdflow.train import train_one

    s = demo_settings(tmp_path)
    rows = demo_rows(40)
    rdir = _write(tmp_path / "r", rows, has_volume=True)
    res = train_one(s, "rf_magpie_volume", "K_VRH", "cv-0", records_dir=rdir)
    assert np.isfinite(res["test_rmse_gpa"]) and res["test_rmse_gpa"] > 0
    model = mlflow.sklearn.load_model(res["model_uri"])
    assert model.n_features_in_ == 133


def _registered(s, rows: list[dict], tmp_path: Path, pid: str):
    """rf_magpie_volume trained on cv-0 and cv-1 of records of ``rows`` under pipeline run
    ``pid``, then registered (the registry's choice): the new ModelVersion."""
    from ecdflow import tracking as tr
    from ecdflow.registry import register_best
    from ecdflow.train import train_one

    rdir = _write(tmp_path / "r", rows, has_volume=True)
    parent = tr.start_parent_run(s, pid)
    for split in ("cv-0", "cv-1"):
        train_one(s, "rf_magpie_volume", "K_VRH", split, records_dir=rdir,
                  parent_run_id=parent, pipeline_run_id=pid)
    return register_best(s, pid, "K_VRH")


def test_registered_volume_model_answers_a_structure_with_an_interval(tmp_path):
    """A pipeline run whose best model needs the volume per atom registers (model card,
    calibration) and its version predicts a CIF structure through the served path."""
    import mlflow

    s = demo_settings(tmp_path)
    mv = _registered(s, demo_rows(40), tmp_path, "pr-vol")
    assert mv.tags["ecdflow.model"] == "rf_magpie_volume"
    assert "volume per atom" in mv.description and int(mv.tags["ecdflow.n_members"]) == 2
    model = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    import pandas as pd

    out = model.predict(pd.DataFrame({"input": [nacl.to(fmt="cif")], "format": ["cif"]}))
    row = out.iloc[0]
    assert row["error"] == "" and np.isfinite(row["prediction"]) and row["prediction"] > 0
    assert row["lower"] <= row["prediction"] <= row["upper"]


def test_export_ships_the_registered_version_unchanged(tmp_path):
    """`ecdflow pretrained export`: the version a pipeline run registered becomes the shipped
    model of its target (named by model, dataset and target), answers like the registered
    version, carries its members' CV predictions and card, and imports back into a registry."""
    import json

    import mlflow
    import pandas as pd
    from pymatgen.core import Lattice, Structure

    from ecdflow.pretrained import OOF, import_to_registry, shipped, shipped_for
    from ecdflow.pretrained.export import export_version
    s = demo_settings(tmp_path)
    rows = demo_rows(40)
    table = tmp_path / "materials.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mv = _registered(s, rows, tmp_path, "pr-ship")
    out = tmp_path / "shipped"
    out.mkdir()
    (out / "ecdflow-old-fcc1-K_VRH").mkdir()  # a model shipped before for the target
    (out / "ecdflow-old-fcc1-K_VRH" / "card.json").write_text(json.dumps(
        {"name": "ecdflow-old-fcc1-K_VRH", "target": "K_VRH", "model_type": "old"}))
    ship = export_version(s, "K_VRH", "pr-ship", out_dir=out, table=table)
    assert ship.name == "ecdflow-rf_magpie_volume-fcc40-K_VRH"
    assert [x.name for x in shipped(out)] == [ship.name]  # the old one is replaced
    assert not (ship.path / "code").exists() and (ship.path / "MODEL_CARD.md").exists()
    assert not (ship.path / "registered_model_meta").exists()
    card = ship.card
    from ecdflow import tracking

    members = mv.tags["ecdflow.members"].split(",")
    commits = {mlflow.MlflowClient().get_run(r).data.tags[tracking.TAG_GIT] for r in members}
    assert card["source"] == {"registered_model": mv.name, "version": str(mv.version),
                              "pipeline_run_id": "pr-ship", "profile": "quick",
                              "member_git_commits": sorted(commits)}
    assert card["n_members"] == 2 and card["cv"]["n_folds"] == 2
    assert card["member_runs"] == members and ship.member_folds == [0, 1]
    assert card["cv"]["rmse_mean"] == pytest.approx(float(mv.tags["ecdflow.cv_rmse_gpa"]),
                                                    rel=1e-4)
    # the interval in the builder's layout: the version's q, the coverage its tags state
    cal = json.loads((ship.path / "artifacts" / "calibration.json").read_text())
    assert card["interval"]["q_gpa"] == pytest.approx(cal["q"], abs=1e-4)
    assert card["interval"]["cv_coverage"] == pytest.approx(
        float(mv.tags["ecdflow.coverage_90"]), abs=1e-4)
    assert card["domain"]["n_train"] == cal["n"] == card["data"]["rows_with_target"]
    oof = json.loads((ship.path / "artifacts" / OOF).read_text())
    assert len(oof["material_id"]) == card["data"]["rows_with_target"]  # 1 repeat, 2 folds
    assert sorted(set(oof["fold"])) == [0, 1]
    # members: LZMA skops files named by manifest order, no pickle, MLmodel names them and
    # the OOF table, and keeps no path of the registry's store
    import yaml

    meta = yaml.safe_load((ship.path / "MLmodel").read_text())
    arts = meta["flavors"]["python_function"]["artifacts"]
    assert {k: v["path"] for k, v in arts.items() if k.startswith("member_")} == {
        f"member_{i}": f"artifacts/member_{i}.skops" for i in range(2)}
    assert arts["oof_predictions"]["path"] == f"artifacts/{OOF}"
    assert "artifact_path" not in meta and not list(ship.path.rglob("*.joblib"))
    assert str(tmp_path) not in (ship.path / "MLmodel").read_text()
    assert "skops==" in (ship.path / "requirements.txt").read_text()
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    x = pd.DataFrame({"input": [nacl.to(fmt="cif")], "format": ["cif"]})
    registered = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}").predict(x)
    local = mlflow.pyfunc.load_model(str(ship.path)).predict(x)
    assert local.prediction[0] == pytest.approx(registered.prediction[0], rel=1e-9)
    assert local.upper[0] == pytest.approx(registered.upper[0], rel=1e-9)
    assert shipped_for("K_VRH", out).name == ship.name
    back = import_to_registry(s, "K_VRH", out)
    assert back.tags["ecdflow.pretrained"] == ship.name
