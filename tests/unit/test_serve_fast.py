"""The served model's fast path gives the old path's numbers (structures in any setting, the
cube found once, the Keras members in one traced call) and keeps its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from ecdflow import ensemble, serve, serve_input  # noqa: E402
from ecdflow.density import procrystal_density  # noqa: E402

GRID = 12
FAMILIES = ("fcc-element", "rocksalt-ionic", "fluorite", "antifluorite", "full-heusler", "d03",
            "k2ptcl6", "elpasolite")


@pytest.fixture(scope="module")
def crystals():
    """Two generated Fm-3m crystals per family (primitive standard cells), seeded; physical
    ones only (the generator's unlabelled guesses include a few over 30 g/cm^3)."""
    from ecdflow.data.generate import generate

    out: dict[str, list] = {}
    for c in generate(seed=3, quotas={f: 6 for f in FAMILIES}):
        if c.structure.density <= 30 and len(out.setdefault(c.family, [])) < 2:
            out[c.family].append(c.structure)
    return [s for f in FAMILIES for s in out[f]]


def _settings(s):
    """The same crystal in the settings users send: as stored, through CIF and POSCAR text,
    as its conventional cube, the cube through CIF, rotated, and a 2x1x1 supercell."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    conv = SpacegroupAnalyzer(s, symprec=1e-3).get_conventional_standard_structure()
    rot = Structure(s.lattice.matrix @ _rotation(), s.species, s.frac_coords)
    return {"stored": s.to_json(), "cif": s.to(fmt="cif"), "poscar": s.to(fmt="poscar"),
            "conventional": conv.to_json(), "conventional-cif": conv.to(fmt="cif"),
            "rotated": rot.to_json(), "supercell": (s * (2, 1, 1)).to_json()}


def _rotation() -> np.ndarray:
    a, b = 0.3, 1.1
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


@pytest.mark.parametrize("setting", ["stored", "cif", "poscar", "conventional",
                                     "conventional-cif", "rotated", "supercell"])
def test_density_from_the_checked_cube_equals_procrystal_density(crystals, setting):
    """For every family and setting: the density the served model builds from the cube found
    while checking equals ``procrystal_density`` of the parsed structure (the old path)."""
    for s in crystals:
        text = _settings(s)[setting]
        p = serve_input.parse_input(text, None, GRID, True, "w")
        assert p.error == "" and p.cube is not None, (s.composition, p.error)
        old = procrystal_density(p.structure, grid=GRID, smearing_A=0.1)
        new = serve_input._procrystal(p.structure, GRID, 0.1, p.cube)
        assert new.shape == (GRID,) * 3 and new.dtype == np.float32
        np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-5 * float(old.max()),
                                   err_msg=f"{s.composition.reduced_formula} ({setting})")


def test_cube_aligned_reads_only_fcc_cells(crystals, nacl_conv):
    """Primitive fcc and fcc-centred cubes are re-expressed (same atoms per primitive cell);
    bcc, simple cubic and tetragonal cells are not (they keep the spglib route)."""
    from pymatgen.core import Lattice, Structure

    for s in crystals:
        aligned = serve_input._cube_aligned(s)
        assert aligned is not None and len(aligned) == len(s)
        assert aligned.composition == s.composition
    assert len(serve_input._cube_aligned(nacl_conv)) == 2
    cscl = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tetra = Structure(Lattice.tetragonal(4.0, 4.4), ["Cu"] * 4,
                      [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    assert serve_input._cube_aligned(cscl) is None and serve_input._cube_aligned(tetra) is None
    assert serve_input._cube_aligned(nacl_conv * (2, 1, 1)) is None


@pytest.mark.parametrize("text, reason", [
    ("cscl", "not a Fm-3m crystal (the models cover Fm-3m only)"),
    ("tetra", "not a Fm-3m crystal (the models cover Fm-3m only)"),
    ("ortho-rocksalt", "not a Fm-3m crystal (the models cover Fm-3m only)"),
])
def test_non_fm3m_cells_are_still_refused_in_one_line(text, reason):
    from pymatgen.core import Lattice, Structure

    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    s = {"cscl": Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
         "tetra": Structure(Lattice.tetragonal(4.0, 4.4), ["Cu"] * 4, fcc),
         # an fcc cube whose sites break m-3m: Na on the corners, Cl on one face pair only
         "ortho-rocksalt": Structure(Lattice.cubic(5.6), ["Na", "Cl", "Na", "Na"], fcc),
         }[text]
    p = serve_input.parse_input(s.to(fmt="cif"), None, GRID, True, "row 7")
    assert p.error.startswith(f"row 7: {reason}") and "\n" not in p.error
    assert p.cube is None


def _members(grid: int, n: int = 3):
    """Small fixed-weight Keras members: dict inputs (ecd + magpie) and one single-tensor
    member, so every input structure the runner handles is used."""
    from keras import layers

    out = []
    for k in range(n):
        keras.utils.set_random_seed(k)
        ecd = keras.Input((grid, grid, grid, 1), name="ecd")
        mag = keras.Input((132,), name="magpie")
        h = layers.Conv3D(4, 3, strides=2, activation="relu")(ecd)
        h = layers.GlobalAveragePooling3D()(h)
        h = layers.Concatenate()([h, layers.Dense(8, activation="tanh")(mag)])
        y = layers.Dense(1)(layers.Dense(16, activation="relu")(h))
        out.append(keras.Model({"ecd": ecd, "magpie": mag}, 100.0 + 50.0 * y))
    ecd = keras.Input((grid, grid, grid, 1), name="ecd")
    y = layers.Dense(1)(layers.GlobalAveragePooling3D()(ecd))
    out.append(keras.Model(ecd, 90.0 + 1000.0 * y))
    return out


@pytest.mark.parametrize("n", [1, 3, ensemble.CHUNK + 5])
def test_ensemble_predict_equals_keras_predict(n):
    """One traced call for all members == each member's ``model.predict`` (n across chunks)."""
    members = _members(GRID)
    rng = np.random.default_rng(n)
    x = {"ecd": rng.gamma(2.0, 0.02, (n, GRID, GRID, GRID, 1)).astype(np.float32),
         "magpie": rng.normal(size=(n, 132)).astype(np.float32)}
    new = ensemble.ensemble_predict(members, x)
    old = np.stack([ensemble.member_predict(m, x) for m in members])
    assert new.shape == (len(members), n)
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-4)
    assert len({float(v) for v in new[:, 0]}) == len(members)  # the members differ


def test_predict_frame_equals_the_old_path(crystals):
    """The whole served path on a few crystals (CIF text) and two bad rows: predictions and
    spreads equal the old path's (per-row ``procrystal_density``, Magpie, ``model.predict``
    per member), bad rows stay one-line errors with null, not NaN."""
    from ecdflow.features import featurize

    members = _members(GRID)
    manifest = {"inputs": ["ecd", "magpie"], "grid": GRID, "smearing_A": 0.1,
                "log_target": False, "members": []}
    picks = crystals[::3]
    texts = [s.to(fmt="cif") for s in picks] + ["not a crystal", "NaCl"]
    df = serve.predict_frame(members, manifest, pd.DataFrame({"input": texts}))
    parsed = [serve_input.parse_input(t, None, GRID, True, "w").structure for t in texts[:-2]]
    x = {"ecd": np.stack([procrystal_density(s, grid=GRID) for s in parsed])[..., None],
         "magpie": featurize([s.composition.formula for s in parsed])[0]}
    ys = np.stack([ensemble.member_predict(m, x) for m in members])
    np.testing.assert_allclose(df.prediction[:len(picks)].astype(float), ys.mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(df.uncertainty[:len(picks)].astype(float), ys.std(axis=0),
                               rtol=1e-4, atol=1e-4)
    assert (df.error[:len(picks)] == "").all()
    assert df.error.iloc[-2].startswith(f"row {len(texts) - 2}: not a recognised input")
    assert df.error.iloc[-1].startswith(f"row {len(texts) - 1}: a formula has no structure")
    assert df.prediction.iloc[-1] is None and df.uncertainty.iloc[-2] is None
