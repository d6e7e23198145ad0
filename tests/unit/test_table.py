"""Materials table: good rows pass, each kind of bad row is quarantined with a reason."""

import json

import pytest

from ecdflow.data.quarantine import Quarantine
from ecdflow.data.table import load_materials, structure_of
from ecdflow.errors import InputError


def test_good_row_loads_with_structure(write_jsonl, material_row):
    df, q = load_materials(write_jsonl([material_row]))
    assert len(df) == 1 and len(q) == 0
    assert df.loc[0, "elements"] == ["Cl", "Na"]
    assert structure_of(df.iloc[0]).composition.reduced_formula == "NaCl"


@pytest.mark.parametrize("change,kind", [
    ({"formula": "NaXx"}, "bad formula"),
    ({"formula": "LaCl"}, "excluded element"),
    ({"K_VRH": -3.0}, "bad value"),
    ({"G_VRH": float("inf")}, "bad value"),
    ({"C12": 60.0}, "born unstable"),
    ({"positions": [[0, 0, 0], [0.3, 0.9, 1.7]]}, "not Fm-3m"),
    ({"material_id": None}, "missing field"),
])
def test_bad_rows_are_quarantined_with_row_number(write_jsonl, material_row, change, kind):
    bad = dict(material_row, **change)
    bad_line = json.dumps(bad).replace("Infinity", "1e999")
    path = write_jsonl([dict(material_row, material_id="ok"), bad_line])
    df, q = load_materials(path)
    assert list(df["material_id"]) == ["ok"]
    assert q.counts() == {kind: 1}
    assert q.entries[0]["where"] == f"{path}:2"


def test_duplicate_ids_and_torn_lines(write_jsonl, material_row):
    path = write_jsonl([material_row, material_row, '{"material_id": "x", '])
    df, q = load_materials(path)
    assert len(df) == 1
    assert q.counts() == {"duplicate id": 1, "bad JSON": 1}


def test_composition_only_csv(tmp_path):
    path = tmp_path / "comp.csv"
    path.write_text("material_id,formula,K_VRH\na,NaCl,24.5\nb,Cs2O,\nc,KBr,15\n")
    df, q = load_materials(path)
    assert list(df["material_id"]) == ["a", "c"]
    assert q.counts() == {"missing field": 1}


def test_missing_table_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such materials table"):
        load_materials(tmp_path / "none.jsonl")


def test_quarantine_report(tmp_path):
    q = Quarantine(name="t")
    q.add("m1", "f:3", "bad value: K_VRH=-1")
    q.add("m2", "f:4", "bad value: G_VRH=nan")
    report = json.loads(q.write(tmp_path / "q.json").read_text())
    assert len(q) == 2 and report["total"] == 2
    assert report["counts"] == {"bad value": 2}
    assert report["items"][1]["where"] == "f:4"


def test_cli_build_writes_grids_features_and_quarantine(tmp_path, write_jsonl, material_row):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    path = write_jsonl([material_row, dict(material_row, material_id="b", K_VRH=-1)])
    out = tmp_path / "built"
    code = run_main(cli, ["--profile", "quick", "data", "build", "--table", str(path),
                          "-o", str(out)])
    assert code == 0
    import numpy as np

    assert np.load(out / "ecd_32.npy").shape == (1, 32, 32, 32)
    assert np.load(out / "magpie.npy").shape == (1, 132)
    assert json.loads((out / "quarantine.json").read_text())["counts"] == {"bad value": 1}


def test_cli_label_without_label_venv_is_one_line(monkeypatch, tmp_path, capsys):
    import importlib

    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    data_cli = importlib.import_module("ecdflow.cli.data")  # the name `data` is the group
    monkeypatch.setattr(data_cli, "LABEL_PYTHON", tmp_path / "missing" / "python")
    assert run_main(cli, ["data", "label", "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make labels" in err[0]
