"""The Fourier-orbit density invariants (ecdflow.density_invariants): origin and cubic point
group invariance on real procrystal cubes, the fcc extinction rule, grid independence, and
refusal of arrays that are not finite cubes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ecdflow.density_invariants import ecd_invariants, orbits
from ecdflow.errors import InputError
from ecdflow.schema import ECD_INVARIANTS_HMAX, ECD_INVARIANTS_LEN


def _rocksalt(a_cation: str, b_anion: str, a: float, grid: int) -> np.ndarray:
    from pymatgen.core import Lattice, Structure

    from ecdflow.density import procrystal_density

    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    anion = [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    s = Structure(Lattice.cubic(a), [a_cation] * 4 + [b_anion] * 4, fcc + anion)
    return procrystal_density(s, grid=grid)


def _fluorite(grid: int) -> np.ndarray:
    from pymatgen.core import Lattice, Structure

    from ecdflow.density import procrystal_density

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.46), ["Ca", "F"],
                                  [[0, 0, 0], [0.25, 0.25, 0.25]])
    return procrystal_density(s, grid=grid)


@pytest.fixture(scope="module")
def cubes() -> dict[str, np.ndarray]:
    """Procrystal NaCl, KCl (rocksalt) and CaF2 (fluorite) at 24^3 and 32^3."""
    return {"NaCl-24": _rocksalt("Na", "Cl", 5.64, 24), "KCl-24": _rocksalt("K", "Cl", 6.29, 24),
            "CaF2-32": _fluorite(32), "NaCl-32": _rocksalt("Na", "Cl", 5.64, 32)}


def test_width_and_orbits_match_the_schema():
    reps = orbits()
    assert len(reps) + 1 == ECD_INVARIANTS_LEN
    assert all(len({v % 2 for v in r}) == 1 for r in reps)
    assert max(max(r) for r in reps) == ECD_INVARIANTS_HMAX
    assert reps[:4] == ((1, 1, 1), (0, 0, 2), (0, 2, 2), (1, 1, 3))  # fcc: 111, 200, 220, 311


@pytest.mark.parametrize("name", ["NaCl-24", "KCl-24", "CaF2-32"])
@pytest.mark.parametrize("shift", [(1, 0, 0), (0, 5, 0), (3, 7, 11), (12, 12, 12), (-4, 2, 9)])
def test_origin_shift_invariance(cubes, name, shift):
    rho = cubes[name]
    ref = ecd_invariants(rho)
    assert np.allclose(ecd_invariants(np.roll(rho, shift, axis=(0, 1, 2))), ref,
                       rtol=1e-9, atol=1e-12)


def _point_ops():
    """The 48 cube point operations on array axes: axis permutation x sign (a flip about the
    grid origin: i -> -i mod N)."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            yield perm, signs


def _apply(rho, perm, signs):
    out = np.transpose(rho, perm)
    for ax, s in enumerate(signs):
        if s < 0:
            out = np.roll(np.flip(out, axis=ax), 1, axis=ax)
    return out


@pytest.mark.parametrize("name", ["NaCl-24", "CaF2-32"])
@pytest.mark.parametrize("op", list(_point_ops()), ids=lambda o: f"{o}")
def test_point_group_invariance_on_a_generic_density(cubes, name, op):
    # a generic (not m-3m symmetric) cube: the crystal density times a smooth asymmetric
    # field, so the invariance comes from the orbit averaging, not from the crystal
    rho = cubes[name].astype(np.float64)
    n = rho.shape[0]
    x = np.arange(n) / n
    field = 1.0 + 0.3 * np.sin(2 * np.pi * x)[:, None, None] * np.cos(
        4 * np.pi * x)[None, :, None] + 0.2 * np.sin(2 * np.pi * (x[None, None, :] + 0.1))
    generic = rho * field
    ref = ecd_invariants(generic)
    assert np.allclose(ecd_invariants(_apply(generic, *op)), ref, rtol=1e-9, atol=1e-12)
    # a plain flip (i -> N-1-i: a point operation plus a one-voxel shift) too
    assert np.allclose(ecd_invariants(np.flip(generic, axis=op[0][0])), ref, rtol=1e-9)


def test_grid_independence_and_values(cubes):
    a, b = ecd_invariants(cubes["NaCl-24"]), ecd_invariants(cubes["NaCl-32"])
    assert np.allclose(a, b, rtol=1e-4, atol=1e-6)
    # mean density = valence electrons / cube volume: NaCl has 4 x (1 + 7) = 32 e in 5.64^3
    assert a[0] == pytest.approx(32 / 5.64**3, rel=1e-5)
    assert a.dtype == np.float64 and a.shape == (ECD_INVARIANTS_LEN,)
    assert np.all(a[1:] >= 0) and np.all(a[1:] <= 1.0 + 1e-9)  # |F| <= F(000) for rho >= 0


def test_fcc_extinction_rule(cubes):
    # mixed-parity (h, k, l) vanish for a face-centred crystal: the orbits kept are the
    # nonzero ones
    f = np.abs(np.fft.fftn(cubes["KCl-24"].astype(np.float64))) / 24**3
    assert f[1, 0, 0] < 1e-7 * f[0, 0, 0] and f[1, 1, 0] < 1e-7 * f[0, 0, 0]
    assert f[1, 1, 1] > 1e-3 * f[0, 0, 0]


@pytest.mark.parametrize("pair", [("NaCl-24", "KCl-24"), ("NaCl-32", "CaF2-32")])
def test_different_crystals_differ(cubes, pair):
    a, b = (ecd_invariants(cubes[k]) for k in pair)
    assert np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)) > 0.05


@pytest.mark.parametrize("bad, match", [
    (np.ones((24, 24, 20)), "must be an \\(N, N, N\\) cube"),
    (np.ones((24, 24)), "must be an \\(N, N, N\\) cube"),
    (np.ones((24, 24, 24, 2)), "must be an \\(N, N, N\\) cube"),
    (np.ones((16, 16, 16)), "too coarse"),
    (np.full((24, 24, 24), np.nan), "non-finite"),
    (np.where(np.arange(24**3).reshape(24, 24, 24) == 5, np.inf, 1.0), "non-finite"),
    (np.zeros((24, 24, 24)), "non-positive mean"),
    (-np.ones((24, 24, 24)), "non-positive mean"),
])
def test_refused_with_one_line(bad, match):
    with pytest.raises(InputError, match=match) as exc:
        ecd_invariants(bad, "cube.npy")
    assert "\n" not in str(exc.value) and "cube.npy" in str(exc.value)


def test_trailing_channel_axis_accepted(cubes):
    rho = cubes["NaCl-24"]
    assert np.array_equal(ecd_invariants(rho[..., None]), ecd_invariants(rho))
