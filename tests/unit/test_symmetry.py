"""The symmetry operations on the ECD cube (numpy and TensorFlow), and which are symmetries."""

import itertools

import numpy as np
import pytest

from ecdflow import symmetry as S
from ecdflow.cube import conventional_cell
from ecdflow.data.generate import build_conventional, primitive_standard
from ecdflow.data.prototypes import FAMILIES
from ecdflow.density import density_on_cube, procrystal_density

PROTOTYPES = {
    "rocksalt": ("rocksalt-ionic", {"A": "Na", "X": "Cl"}),
    "fluorite": ("fluorite", {"A": "Ca", "X": "F"}),
    "antifluorite": ("antifluorite", {"A": "Li", "X": "O"}),
    "heusler": ("full-heusler", {"X": "Cu", "Y": "Mn", "Z": "Al"}),
    "elpasolite": ("elpasolite", {"A": "Cs", "B": "Na", "C": "Sc", "X": "Cl"}),
    "fcc": ("fcc-element", {"A": "Cu"}),
    "k2ptcl6": ("k2ptcl6", {"A": "K", "B": "Pt", "X": "Cl"}),
}


def _structure(name):
    fam, assignment = PROTOTYPES[name]
    return primitive_standard(build_conventional(FAMILIES[fam], assignment))


def test_96_distinct_operations_forming_a_group():
    cube = np.random.default_rng(0).normal(size=(6, 6, 6))
    imgs = [S.apply_op(cube, k) for k in range(S.N_OPS)]
    keys = {im.tobytes() for im in imgs}
    assert len(keys) == S.N_OPS  # all distinct
    for a, b in itertools.product(range(0, S.N_OPS, 7), range(0, S.N_OPS, 5)):
        assert S.apply_op(imgs[a], b).tobytes() in keys  # closed


def test_numpy_and_tensorflow_operations_agree():
    import tensorflow as tf

    cube = np.random.default_rng(1).normal(size=(6, 6, 6, 1)).astype(np.float32)
    batch = np.stack([cube, 2 * cube])
    for k in range(S.N_OPS):
        ref = S.apply_op(cube, k)
        np.testing.assert_array_equal(S.tf_apply_op(tf.constant(cube), tf.constant(k)).numpy(),
                                      ref)
        np.testing.assert_array_equal(S.apply_op(batch, k, first_axis=1)[1], 2 * ref)


def test_bad_operation_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown symmetry mode"):
        S.operations("rot")
    with pytest.raises(ValueError, match="even grid"):
        S.apply_op(np.zeros((5, 5, 5)), 48)
    with pytest.raises(ValueError, match="cubic grid"):
        S.apply_op(np.zeros((4, 4, 6)), 1)


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_point_operations_are_symmetries_and_the_origin_shift_is_the_other_frame(name):
    """On the canonical cube the 48 point operations (and the fcc translations) leave the
    procrystal unchanged; the half-cube shift gives the crystal described from the other
    m-3m site (density computed with the atoms moved by (1/2, 1/2, 1/2))."""
    s = _structure(name)
    rho = procrystal_density(s, grid=16)
    assert S.symmetry_residual(rho, "point48") < 1e-5
    for t in ((8, 8, 0), (8, 0, 8), (0, 8, 8)):
        np.testing.assert_allclose(np.roll(rho, t, (0, 1, 2)), rho, atol=1e-5 * rho.max())
    conv = conventional_cell(s)
    other = density_on_cube([x.specie.symbol for x in conv], (conv.frac_coords + 0.5) % 1.0,
                            conv.lattice.a, 16)
    np.testing.assert_allclose(S.apply_op(rho, 48), other, atol=1e-5 * rho.max())
    # not a symmetry: a different picture (CaF2 only 0.2%: diffuse Ca 4s2 under F 2s2p5)
    assert S.symmetry_residual(rho, "origin") > 1e-3


def test_tta_averages_over_the_set_and_is_exact_under_the_origin_shift():
    rng = np.random.default_rng(2)
    x = {"ecd": rng.normal(size=(3, 8, 8, 8, 1)), "magpie": rng.normal(size=(3, 132))}
    w = rng.normal(size=(8, 8, 8))

    def predict(f):  # deliberately not invariant
        return np.einsum("nijkc,ijk->n", f["ecd"], w) + f["magpie"][:, 0]

    np.testing.assert_allclose(S.tta_predict(predict, x, "none"), predict(x))
    both = S.tta_predict(predict, x, "origin")
    np.testing.assert_allclose(both, 0.5 * (predict(x) + predict(
        {**x, "ecd": S.apply_op(x["ecd"], 48, first_axis=1)})))
    shifted = {**x, "ecd": S.apply_op(x["ecd"], 48, first_axis=1)}
    np.testing.assert_allclose(S.tta_predict(predict, shifted, "normalizer"),
                               S.tta_predict(predict, x, "normalizer"), rtol=1e-10)


def test_augmentation_is_seeded_and_draws_from_the_set():
    import tensorflow as tf

    cube = np.random.default_rng(3).normal(size=(4, 4, 4, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors(({"ecd": cube}, np.ones(1, np.float32))).repeat(40)

    def run(seed):
        return [f["ecd"].numpy() for f, _ in S.augment_dataset(ds, "origin", seed)]

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    shifted = [not np.array_equal(x, cube) for x in a]
    assert all(np.array_equal(x, S.apply_op(cube, 48)) for x, s in zip(a, shifted,
                                                                        strict=True) if s)
    assert 5 < sum(shifted) < 35  # both operations drawn
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
