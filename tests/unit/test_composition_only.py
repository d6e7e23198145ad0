"""Composition-only tables (material_id, formula, K_VRH, G_VRH) on the train side: the
build-time plan skips every density model with one line, LOEO splits come from the formulas'
elements, the train step skips density models on records without density, the CLI's plan
options, the records check of an empty ECD, and the one featurisation check in data build."""

import json
from pathlib import Path

import numpy as np
import pytest

from ecdflow.cli.pipeline import _plan_overrides
from ecdflow.config import load_settings
from ecdflow.errors import EcdflowError
from ecdflow.kfp.plan import build_plan, density_skips, table_facts
from ecdflow.models import MODELS, get_spec
from ecdflow.splits import element_sets
from ecdflow.train import density_skip, needs_density, needs_structure, no_structure_line

ROWS = [("m1", "NaCl", 24.0, 14.0), ("m2", "CsCl", 18.0, 8.0), ("m3", "MgO", 160.0, 130.0),
        ("m4", "KBr", 15.0, 8.0)]


def _write(path: Path, kind: str, rows=ROWS) -> Path:
    if kind == "jsonl":
        path.write_text("".join(json.dumps({"material_id": m, "formula": f, "K_VRH": k,
                                            "G_VRH": g}) + "\n" for m, f, k, g in rows))
    else:
        sep = {"csv": ",", "tsv": "\t", "semicolon": ";"}[kind]
        path.write_text(sep.join(("material_id", "formula", "K_VRH", "G_VRH")) + "\n" + "".join(
            sep.join((m, f, str(k), str(g))) + "\n" for m, f, k, g in rows))
    return path


def _settings(table: Path, **extra):
    return load_settings(None, "quick", {"paths": {"materials": str(table)}, **extra})


@pytest.mark.parametrize("kind", ["csv", "tsv", "semicolon", "jsonl"])
def test_plan_of_a_composition_only_table_has_no_density_model(tmp_path, kind):
    table = _write(tmp_path / f"t.{kind}", kind)
    s = _settings(table, models={"enabled": list(MODELS)})
    density = sorted(m for m in MODELS if needs_density(m))
    assert density == ["cnn2d_se", "cnn3d", "fusion", "gbm_magpie_volume_ecdinv",
                       "rf_magpie_volume_ecdinv"]
    structure = sorted(m for m in MODELS if needs_structure(m))
    assert structure == sorted([*density, "rf_magpie_volume"])
    skips = density_skips(s)
    assert sorted(skips) == structure
    assert skips["rf_magpie_volume"] == ("skipping rf_magpie_volume: records carry no volume "
                                         f"per atom (composition-only table t.{kind})")
    assert skips["cnn3d"] == ("skipping cnn3d: records carry no density (composition-only "
                              f"table t.{kind})")
    plan = build_plan(s)
    assert {r.model for r in plan} == {"rf_magpie", "cnn_magpie"}
    # quick profile: folds 0 and 1, LOEO Cs (CsCl holds Cs: elements from the formula)
    assert sorted({r.split for r in plan}) == ["cv-0", "cv-1", "loeo-Cs"]


def test_loeo_split_only_for_elements_the_formulas_hold(tmp_path):
    table = _write(tmp_path / "t.csv", "csv", [r for r in ROWS if "Cs" not in r[1]])
    assert "loeo-Cs" not in {r.split for r in build_plan(_settings(table))}
    facts = table_facts(_settings(table))
    assert element_sets(facts.index) == {"m1": {"Na", "Cl"}, "m3": {"Mg", "O"},
                                         "m4": {"K", "Br"}}
    assert facts.has_structures is False


@pytest.mark.parametrize("elements", [None, [], "absent"])
def test_splits_take_elements_from_formulas(elements):
    """Records of a composition-only table carry an empty ``elements`` list (or none): LOEO
    test sets and the planned split names come from the formulas."""
    import pandas as pd

    from ecdflow.splits import make_splits, split_names

    df = pd.DataFrame({"material_id": [r[0] for r in ROWS], "formula": [r[1] for r in ROWS]})
    if elements != "absent":
        df["elements"] = [elements] * len(df)
    splits = make_splits(df, 2, ["Cs", "Na", "Xe"], seed=0)
    assert splits["loeo-Cs"]["test"] == ["m2"] and splits["loeo-Na"]["test"] == ["m1"]
    assert "loeo-Xe" not in splits
    s = load_settings(None, "quick", {"splits": {"loeo_elements": ["Cs", "Mg", "Xe"]}})
    assert split_names(s, df) == ["cv-0", "cv-1", "loeo-Cs", "loeo-Mg"]


def test_a_table_with_structures_skips_nothing():
    s = load_settings(None, "quick")
    assert density_skips(s) == {}
    assert {r.model for r in build_plan(s)} == set(s.models.enabled)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("manifest,has", [
    ({"has_density": False, "grid": 0, "ecd_source": "none", "materials": "f.csv"}, False),
    ({"has_density": True, "has_volume": True, "grid": 16, "ecd_source": "procrystal",
      "materials": "m.jsonl"}, True),
    ({"grid": 32, "materials": "old.jsonl"}, True),  # manifests from before the flag
])
def test_train_step_skip_line(model, manifest, has):
    line = density_skip(model, manifest)
    if not has and "ecd" in get_spec(model).inputs:  # the density is what is missing
        assert line == no_structure_line(model, manifest["materials"])
        assert line.startswith(f"skipping {model}: records carry no density")
    elif "volume_per_atom" in get_spec(model).inputs:  # needs the structure's volume
        if manifest.get("has_volume"):
            assert line is None
        else:
            assert line == f"skipping {model}: records carry no volume per atom " \
                           f"(composition-only table {manifest['materials']})"
    else:
        assert line is None


def test_step_train_skips_a_density_model_on_records_without_density(tmp_path):
    from ecdflow.kfp.steps import step_train

    (tmp_path / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "count": 4, "shards": [], "grid": 0, "has_density": False,
        "ecd_source": "none", "materials": "f.csv", "data_hash": "x", "dtype": "float16",
        "compression": ""}))
    out = json.loads(step_train("quick", "", "", "cnn3d", "K_VRH", "cv-0", str(tmp_path),
                                "", ""))
    assert out == [{"model": "cnn3d", "target": "K_VRH", "split": "cv-0",
                    "skipped": no_structure_line("cnn3d", "f.csv")}]


def test_plan_options(tmp_path):
    table = _write(tmp_path / "t.csv", "csv")
    ov = _plan_overrides(str(table), "rf_magpie", "all")
    assert ov == {"paths": {"materials": str(table.resolve())},
                  "models": {"enabled": ["rf_magpie"]}, "splits": {"folds": None}}
    s = load_settings(None, "quick", ov)
    assert [(r.model, r.split) for r in build_plan(s) if r.target == "K_VRH"] == [
        ("rf_magpie", f"cv-{k}") for k in range(5)] + [("rf_magpie", "loeo-Cs")]
    assert _plan_overrides(None, "rf_magpie, cnn_magpie", "0,1") == {
        "models": {"enabled": ["rf_magpie", "cnn_magpie"]}, "splits": {"folds": [0, 1]}}
    for bad in ((str(tmp_path / "nope.csv"), None, None), (None, "rf_magpie,nope", None),
                (None, None, "first")):
        with pytest.raises(EcdflowError):
            _plan_overrides(*bad)


def test_cli_run_local_refuses_a_missing_table_in_one_line(tmp_path):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    assert run_main(cli, ["pipeline", "run-local", "--materials",
                          str(tmp_path / "nope.csv")]) == 2


@pytest.mark.parametrize("grid,raw,shape,finite,shape_ok", [
    (0, b"", [0, 0, 0], True, True),            # composition-only record: no density
    (4, b"", [4, 4, 4], False, False),          # a density record with its ECD missing
    (2, np.ones(8, "<f2").tobytes(), [2, 2, 2], True, True),
    (2, np.full(8, np.nan, "<f2").tobytes(), [2, 2, 2], False, True),
])
def test_records_frame_ecd_stats(grid, raw, shape, finite, shape_ok):
    from ecdflow.validation.frames import _ecd_stats

    st = _ecd_stats(raw, shape, "float16", grid)
    assert (st["ecd_finite"], st["shape_ok"]) == (finite, shape_ok)


def test_build_dataset_quarantines_rows_without_usable_features(tmp_path):
    from ecdflow.data.build import build_dataset

    rows = [("m1", "NaCl", 24.0, 14.0), ("m2", "Ar", 2.0, 1.0), ("m3", "MgO", 160.0, 130.0),
            ("m4", "HeF2", 20.0, 10.0)]
    res = build_dataset(_write(tmp_path / "t.csv", "csv", rows), tmp_path / "out")
    index = json.loads((res.out_dir / "index.json").read_text())
    assert index["material_id"] == ["m1", "m3"]
    feats = np.load(res.out_dir / "magpie.npy")
    assert feats.shape == (2, 132) and np.all(np.isfinite(feats))
    q = {e["item_id"]: e["reason"] for e in json.loads(res.quarantine.read_text())["items"]}
    assert set(q) == {"m2", "m4"}
    assert "Ar has no Magpie" in q["m2"] and "He has no Magpie" in q["m4"]
    assert res.counts["quarantined"] == 2


def test_bench_table_is_composition_only(tmp_path):
    from bench.bench_formulas import formula_rows, write_table

    table = write_table(formula_rows(2100), tmp_path / "f.csv")
    facts = table_facts(_settings(table))
    assert len(facts.index) == 2100 and facts.has_structures is False


@pytest.mark.parametrize("kind", ["csv", "tsv", "semicolon", "jsonl"])
def test_materials_suite_reads_formulas_as_text(tmp_path, kind):
    """NaN (sodium nitride) and NA are formulas, not missing values, in every dialect."""
    from ecdflow.validation.frames import materials_frame, read_raw_table

    rows = [*ROWS, ("m5", "NaN", 25.0, 11.0), ("m6", "NAu3Li3", 159.0, 99.0)]
    frame = materials_frame(read_raw_table(_write(tmp_path / f"t.{kind}", kind, rows)))
    assert frame.formula_parses.tolist() == [True] * 6
    assert frame.has_label.all() and frame.K_VRH.tolist() == [r[2] for r in rows]


def test_tsne_map_leaves_out_rows_without_usable_features(tmp_path, caplog):
    """Argon (no Magpie electronegativity) is left out of the map and counted, not zero-filled."""
    from ecdflow.config import REPO_ROOT
    from ecdflow.evaluate import tsne_maps

    rows = [json.loads(ln) for ln in
            (REPO_ROOT / "data/fcc/materials-quick.jsonl").read_text().splitlines()[:8]]
    a = 5.26
    rows.append({**rows[0], "material_id": "fcc:Ar", "formula": "Ar", "elements": ["Ar"],
                 "cell": [[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]],
                 "numbers": [18], "positions": [[0.0, 0.0, 0.0]]})
    table = tmp_path / "m.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = load_settings(None, "quick", {"paths": {"materials": str(table)},
                                      "density": {"grid": 8}})
    with caplog.at_level("WARNING", logger="ecdflow"):
        paths = tsne_maps(s, [], tmp_path)
    assert [p.name for p in paths] == ["tsne_magpie.png", "tsne_ecd.png"]
    assert "t-SNE: 1 of 9 materials left out" in caplog.text
    assert "Ar has no Magpie" in caplog.text
