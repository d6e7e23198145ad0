"""Every odd or bad input file of tests/inputs/ through EVERY entry point, against the outcome
written beside it (tests/inputs/expected.yaml): the library reader, `ecdflow data chgcar`,
`ecdflow predict` (exit code + strict JSON), the pyfunc (a Magpie and a density model) and
`ecdflow preprocess` (tables, and every non-table file in a --chgcar-dir)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow
INPUTS = Path(__file__).resolve().parents[1] / "inputs"
CASES = yaml.safe_load((INPUTS / "expected.yaml").read_text())["files"]
ENTRIES = ["reader", "data_chgcar", "predict_cli", "pyfunc_magpie", "pyfunc_ecd", "preprocess"]
GRID = 8


class StdDensity:
    """A fixed 'density model': 1000 * standard deviation of the ECD cube (e/Å^3)."""

    inputs = [SimpleNamespace(name="ecd")]

    def predict(self, feed, verbose=0, batch_size=32):
        x = np.asarray(feed["ecd"])
        return 1000.0 * x.reshape(len(x), -1).std(axis=1)


def _ident(case: dict) -> str:
    return case["file"]


def _strict_json(text: str):
    def no_constant(name):
        raise AssertionError(f"non-JSON constant {name} in output")

    return json.loads(text, parse_constant=no_constant)


def _one_line(msg: str, file: str) -> None:
    assert "\n" not in msg.strip() and file in msg, msg
    assert "/tmp" not in msg.replace(str(INPUTS), ""), f"temporary name leaked: {msg}"
    for bad in ("list index out of range", "Traceback", "KeyError"):
        assert bad not in msg, msg


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two saved pyfuncs (a Magpie linear model = mean Number, and StdDensity) + params.yaml."""
    import joblib
    import mlflow
    from sklearn.linear_model import LinearRegression

    from ecdflow.features import magpie_labels
    from ecdflow.serve import ModulusEnsemble, signature

    tmp = tmp_path_factory.mktemp("models")
    lr = LinearRegression()
    lr.coef_ = np.eye(132)[magpie_labels().index("MagpieData mean Number")]
    lr.intercept_, lr.n_features_in_ = 0.0, 132
    out = {}
    for name, member, inputs in (("magpie", lr, ["magpie"]), ("ecd", StdDensity(), ["ecd"])):
        joblib.dump(member, tmp / f"{name}.joblib")
        manifest = {"target": "K_VRH", "model_type": name, "inputs": inputs, "grid": GRID,
                    "smearing_A": 0.1, "log_target": False, "members": ["member_0"],
                    "density_source": {"kind": "procrystal", "grid": GRID, "smearing_A": 0.1}}
        (tmp / f"{name}.json").write_text(json.dumps(manifest))
        path = tmp / f"pyfunc-{name}"
        mlflow.pyfunc.save_model(str(path), python_model=ModulusEnsemble(),
                                 artifacts={"manifest": str(tmp / f"{name}.json"),
                                            "member_0": str(tmp / f"{name}.joblib")},
                                 signature=signature(), pip_requirements=["mlflow"])
        out[name] = (str(path), mlflow.pyfunc.load_model(str(path)))
    params = tmp / "params.yaml"
    params.write_text(f"density: {{grid: {GRID}}}\npaths: {{work_dir: {tmp / 'w'}}}\n"
                      "records: {num_shards: 1, dtype: float32, compression: ''}\nprofiles: {}\n")
    return out, params


def _settings(tmp: Path):
    from ecdflow.config import load_settings

    return load_settings(overrides={
        "density": {"grid": GRID}, "paths": {"work_dir": str(tmp / "work")},
        "records": {"num_shards": 1, "dtype": "float32", "compression": ""}})


def _records(out: Path) -> dict[str, dict]:
    from ecdflow import records as R
    from ecdflow import records_reader as RD

    man = R.read_manifest(str(out))
    inputs = ("ecd", "magpie") if R.has_density(man) else ("magpie",)
    idx = RD.read_index(str(out)).set_index("material_id")
    got = {}
    for f in RD.make_dataset(str(out), batch_size=0, inputs=inputs):
        mid = f["material_id"].numpy().decode()
        got[mid] = {"K_VRH": float(idx.loc[mid, "K_VRH"]),
                    "ecd": f["ecd"].numpy()[..., 0] if "ecd" in f else None}
    return got


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    """Preprocess each table, and one --chgcar-dir run holding every non-table file as
    <id>.CHGCAR; returns {file: (manifest, records by id, quarantine reasons by id)}."""
    from ecdflow.preprocess import run_preprocess

    tmp = tmp_path_factory.mktemp("pre")
    results = {}

    def run(table: Path, out: Path, chgcar_dir: Path | None = None):
        man = run_preprocess(_settings(tmp), materials_path=str(table), out_dir=str(out),
                             chgcar_dir=str(chgcar_dir) if chgcar_dir else None)
        qpath = out / "quarantine.jsonl"
        dead = ({d["item_id"]: d["reason"] for d in map(json.loads, qpath.read_text()
                                                         .splitlines())}
                if qpath.exists() else {})
        return man, (_records(out) if man["count"] else {}), dead

    for case in CASES:
        if case.get("kind") == "table":
            results[case["file"]] = run(INPUTS / case["file"], tmp / f"out-{case['file']}")
    cdir = tmp / "chg"
    cdir.mkdir()
    rows = []
    for i, case in enumerate(c for c in CASES if c.get("kind") != "table"):
        mid = f"f{i:02d}"
        shutil.copy(INPUTS / case["file"], cdir / f"{mid}.CHGCAR")
        rows.append({"material_id": mid, "formula": "Cu",
                     "K_VRH": 100.0, "G_VRH": 40.0, "file": case["file"]})
    table = tmp / "chg.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    man, recs, dead = run(table, tmp / "out-chg", cdir)
    for r in rows:
        results[r["file"]] = (man, {r["material_id"]: recs.get(r["material_id"])},
                              {r["material_id"]: dead.get(r["material_id"])})
    return results


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_input_file(case, entry, request, tmp_path, capsys):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main
    from ecdflow.errors import InputError
    from ecdflow.io import read_input, read_table

    path = INPUTS / case["file"]
    refused = case.get("refused")
    kind = case.get("kind")
    if entry != "reader":  # the reader needs no model and no preprocessing run
        models = request.getfixturevalue("models")
        (mpath, magpie), params = models[0]["magpie"], models[1]
        _, ecd_model = models[0]["ecd"]

    if entry == "reader":
        if refused:
            with pytest.raises(InputError) as err:
                read_input(path)
            assert refused in str(err.value)
            _one_line(str(err.value), str(path))
        elif kind == "table":
            assert len(read_table(path)) == case["table"]["rows"]
        else:
            item = read_input(path)
            assert (item.kind, item.formula) == (kind, case["formula"])
            assert case.get("note", "") in item.note
            if "electrons" in case:
                assert item.electrons == pytest.approx(case["electrons"], rel=1e-6)
                assert item.blocks == case["blocks"]
            else:
                assert item.rho is None

    elif entry == "data_chgcar":
        out = tmp_path / "out.CHGCAR"
        code = run_main(cli, ["--params", str(params), "data", "chgcar", str(path), "-o",
                              str(out), "--grid", str(GRID)])
        io = capsys.readouterr()
        why = refused or {"table": "a table, not a single structure",
                          "formula": "a formula has no structure"}.get(kind)
        if why:
            assert code == 2 and why in io.err
            _one_line(io.err, str(path))
        else:
            assert code == 0, io.err
            from ecdflow.chgcar import read_chgcar

            s, rho = read_chgcar(out)
            assert rho.shape == (GRID,) * 3 and s.composition.reduced_formula == case["formula"]
            if "electrons" in case:
                assert f"{case['electrons']:.3f} electrons" in io.out
                assert float(rho.mean()) * s.volume == pytest.approx(case["electrons"], rel=1e-4)

    elif entry == "predict_cli":
        code = run_main(cli, ["--params", str(params), "predict", str(path), "--target", "bulk",
                              "--model-uri", mpath, "--format", "json"])
        io = capsys.readouterr()
        rows = _strict_json(io.out)
        if kind == "table":
            t = case["table"]
            assert len(rows) == t["rows"]
            preds = {r["file"].split("(")[-1].rstrip(")"): r for r in rows}
            for mid, k in t["k"].items():
                assert preds[mid]["prediction_gpa"] == pytest.approx(k, rel=1e-5)
            bad = [r for r in rows if r["error"]]
            assert len(bad) == t["rows"] - len(t["k"])
            assert all(r["prediction_gpa"] is None for r in bad)
            assert code == (1 if bad else 0)
            for r in bad:
                _one_line(r["error"], str(path))
            return
        assert len(rows) == 1
        row = rows[0]
        want = {"refused": refused} if refused else case["magpie"]
        if "refused" in want:
            assert code == 1 and row["prediction_gpa"] is None
            assert want["refused"] in row["error"] and want["refused"] in io.err
            _one_line(row["error"], str(path))
        else:
            assert code == 0 and row["error"] == "", row["error"]
            assert row["prediction_gpa"] == pytest.approx(want["k"], rel=1e-5)

    elif entry in ("pyfunc_magpie", "pyfunc_ecd"):
        model = magpie if entry == "pyfunc_magpie" else ecd_model
        from ecdflow.io import hint_of

        frame = pd.DataFrame({"input": [path.read_bytes()], "source": [case["file"]],
                              "format": [hint_of(case["file"])]})
        df = model.predict(frame)
        if entry == "pyfunc_ecd" and kind == "chgcar" and not refused:
            # a CHGCAR to a procrystal-trained density model: refused by default, predicted
            # and flagged out of domain with allow_density_source_mismatch (docs/inputs.md)
            assert df["prediction"][0] is None
            assert df["error"][0] == (f"{case['file']}: density source chgcar differs from the "
                                      "model's training density (procrystal); refused (set "
                                      "allow_density_source_mismatch to predict, flagged)")
            df = model.predict(frame, params={"allow_density_source_mismatch": True})
            assert df["out_of_domain"][0] is True
            assert "density source chgcar differs" in df["ood_reason"][0]
        err, pred = df["error"][0], df["prediction"][0]
        if refused or kind == "table":
            want = {"refused": refused or "a table, not a single structure"}
        else:
            want = case["magpie"] if entry == "pyfunc_magpie" else case["ecd"]
            want = {} if want == "ok" else want
        if "refused" in want:
            assert want["refused"] in err and pred is None
            _one_line(err, case["file"])
        else:
            assert err == "" and pred is not None and math.isfinite(pred), err
            if "k" in want:
                assert pred == pytest.approx(want["k"], rel=0.02 if entry == "pyfunc_ecd"
                                             else 1e-5)

    elif entry == "preprocess":
        man, recs, dead = request.getfixturevalue("preprocessed")[case["file"]]
        if kind == "table":
            t = case["table"]
            assert man["counts"]["written"] == t["written"] and man["has_density"] is False
            assert man["ecd_source"] == "none" and man["grid"] == 0
            assert man["density_source"] == {"kind": "none", "grid": 0}
            assert set(recs) == set(t["k"])
            assert set(dead) == set(t["quarantined"])
            for mid, why in t["quarantined"].items():
                assert why in dead[mid], dead[mid]
            assert recs["t-1"]["K_VRH"] == pytest.approx(24.9, rel=1e-6)  # decimal comma too
            return
        (mid, rec), (_, reason) = next(iter(recs.items())), next(iter(dead.items()))
        src = man["density_source"]  # the --chgcar-dir run: provenance says so
        assert (src["kind"], src["grid"], man["ecd_source"]) == ("chgcar", GRID, "chgcar")
        assert "CHGCAR" in src["model"] and "smearing_A" not in src
        want = case.get("chgcar_dir") or {"refused": refused}
        if want == "ok":
            assert reason is None and rec is not None, reason
            ecd = rec["ecd"]
            v = 3.61 ** 3  # the Cu cube; the file's wave survives (a procrystal has no such std)
            assert float(ecd.mean()) * v == pytest.approx(case["electrons"], rel=1e-3)
            assert float(ecd.std()) * v / case["electrons"] == pytest.approx(0.5 / 2 ** 0.5,
                                                                              rel=0.02)
        else:
            assert rec is None and reason and want["refused"] in reason, reason
            assert f"{mid}.CHGCAR" in reason and "\n" not in reason  # names the user's file


def test_preprocess_cli_exit_codes(tmp_path, models, capsys):
    """1 when some rows were quarantined (the rest written), 2 with one line when none was."""
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    params = models[1]
    args = ["--params", str(params), "preprocess", "--out", str(tmp_path / "rec")]
    assert run_main(cli, [*args, "--materials", str(INPUTS / "formulas.csv")]) == 1
    assert "5 of 9 rows quarantined" in capsys.readouterr().err
    assert run_main(cli, [*args, "--materials", str(INPUTS / "formulas_bom.tsv")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("material_id,formula,K_VRH\nx-1,Ar,3\nx-2,nacl,4\n")
    assert run_main(cli, [*args, "--materials", str(bad)]) == 2
    errs = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and errs[0].startswith("error: no record written from bad.csv")
    assert "Ar has no Magpie Electronegativity" in errs[0] or "nacl" in errs[0]
    assert run_main(cli, [*args, "--materials", str(INPUTS / "binary.bin")]) == 2
    assert "binary file" in capsys.readouterr().err


def test_fixture_files_are_reproduced_by_their_script(tmp_path):
    """tests/inputs/make_inputs.py writes exactly the committed files (byte for byte)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_inputs", INPUTS / "make_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    written = mod.write(tmp_path)
    assert {p.name for p in written} == {c["file"] for c in CASES}
    for p in written:
        assert p.read_bytes() == (INPUTS / p.name).read_bytes(), p.name
