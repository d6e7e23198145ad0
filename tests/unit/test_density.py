"""Procrystal ECD: electron counts, frame, Slater valence, and agreement with real space."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from ecdflow.cube import conventional_cell
from ecdflow.density import (
    density_realspace,
    electron_count,
    form_factor,
    procrystal_density,
    valence_electrons,
)
from ecdflow.errors import InputError


def _valence_total(structure) -> float:
    return sum(valence_electrons(site.specie.symbol) for site in structure)


@pytest.mark.parametrize("symbol,expected", [("Na", 1), ("Cl", 7), ("F", 7), ("Sc", 3),
                                             ("Tl", 3), ("Fe", 8), ("Pd", 10), ("Cs", 1)])
def test_valence_electrons_follow_outer_sp_plus_open_d(symbol, expected):
    assert valence_electrons(symbol) == expected


def test_unknown_element_is_input_error():
    with pytest.raises(InputError, match="Qq"):
        valence_electrons("Qq")


def test_form_factor_is_one_at_zero_and_decays():
    q = np.array([0.0, 1e-6, 1.0, 5.0, 50.0])
    f = form_factor(q, zeta=2.0, n_eff=3.0)
    assert f[0] == 1.0 and abs(f[1] - 1.0) < 1e-9
    assert abs(f[-1]) < 1e-3 < f[2]


def test_fcc_element_density_integrates_to_valence(tmp_path):
    cu = Structure(Lattice.cubic(3.61), ["Cu"] * 4,
                   [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    rho = procrystal_density(cu, grid=24)
    assert electron_count(rho, 3.61**3) == pytest.approx(4 * valence_electrons("Cu"), rel=1e-3)


@pytest.mark.parametrize("grid", [20, 32])
def test_primitive_and_conventional_nacl_give_same_cube(nacl_prim, nacl_conv, grid):
    a = procrystal_density(nacl_prim, grid=grid)
    b = procrystal_density(nacl_conv, grid=grid)
    assert a.shape == (grid,) * 3 and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5 * float(b.max()))
    assert electron_count(a, 5.64**3) == pytest.approx(32.0, rel=1e-3)


@pytest.mark.parametrize("cation,anion,a", [("Na", "Cl", 5.64), ("K", "Cl", 6.29),
                                            ("Li", "F", 4.03), ("Mg", "O", 4.21),
                                            ("Cs", "I", 7.66), ("Ti", "C", 4.33),
                                            ("Sn", "Te", 6.32)])
@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.5, 0.5, 0.5)])
def test_less_electronegative_atom_sits_at_origin_whatever_the_setting(cation, anion, a, shift):
    """Rocksalt compounds all reach the model with the cation at the origin (not the heavier
    atom: K > Cl but Na < Cl), from either m-3m origin and either cell."""
    from pymatgen.core import Lattice, Structure

    from ecdflow.data.generate import primitive_standard

    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    ref = Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4,
                    fcc + [[(x + 0.5) % 1, y, z] for x, y, z in fcc])
    moved = ref.copy()
    moved.translate_sites(range(len(moved)), list(shift))
    for s in (moved, primitive_standard(moved)):
        conv = conventional_cell(s)
        at_origin = [x.specie.symbol for x in conv if np.allclose(x.frac_coords % 1.0, 0.0)]
        assert at_origin == [cation]
        np.testing.assert_allclose(procrystal_density(s, 16), procrystal_density(ref, 16),
                                   atol=1e-5)


def test_elpasolite_primitive_integrates_to_conventional_valence(elpasolite_prim):
    assert len(elpasolite_prim) == 10
    conv = conventional_cell(elpasolite_prim)
    assert len(conv) == 40
    rho = procrystal_density(elpasolite_prim, grid=32)
    total = _valence_total(conv)
    assert electron_count(rho, conv.volume) == pytest.approx(total, rel=1e-3)
    assert rho.min() > -1e-3 * rho.max()


def test_fft_matches_realspace_sum_without_smearing(nacl_conv):
    fft = procrystal_density(nacl_conv, grid=24, smearing_A=0.0)
    ref = density_realspace(nacl_conv, grid=24)
    assert np.corrcoef(fft.ravel(), ref.ravel())[0, 1] > 0.999


def test_non_fm3m_structure_is_rejected():
    cscl = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(InputError, match="not Fm-3m"):
        procrystal_density(cscl, grid=8)


def test_fast_cube_path_equals_spglib_path(nacl_prim, elpasolite_prim, monkeypatch):
    """The spglib-free route for cube-aligned primitive fcc cells gives the same density."""
    import ecdflow.cube as C

    for s in (nacl_prim, elpasolite_prim):
        assert C._standard_fast(s) is not None
        fast = procrystal_density(s, 16)
        monkeypatch.setattr(C, "_standard_fast", lambda *a, **k: None)
        slow = procrystal_density(s, 16)
        monkeypatch.undo()
        assert np.allclose(fast, slow, rtol=1e-5, atol=1e-6 * float(slow.max()))


def test_fast_cube_path_declines_other_cells(nacl_conv, nacl_prim):
    """A conventional cube, or a primitive cell whose symmetry is broken, goes to spglib."""
    import ecdflow.cube as C

    assert C._standard_fast(nacl_conv) is None
    broken = nacl_prim.copy()
    broken.translate_sites([1], [0.02, 0.0, 0.0], frac_coords=True)
    assert C._standard_fast(broken) is None


@pytest.mark.parametrize("scale", [2, (2, 1, 1), 3])
def test_supercell_gives_the_cube_of_the_crystal_not_of_the_supercell(nacl_prim, nacl_conv,
                                                                       scale):
    """A 2x2x2 supercell of the primitive cell has the primitive cell's shape at twice the
    size: it must still give the crystal's own cube (a = 5.64 Å), not a tiled 11.28 Å one."""
    ref = procrystal_density(nacl_prim, 16)
    for s in (nacl_prim, nacl_conv):
        big = s.copy()
        big.make_supercell(scale)
        assert conventional_cell(big).lattice.a == pytest.approx(5.64, rel=1e-6)
        np.testing.assert_allclose(procrystal_density(big, 16), ref, atol=1e-5 * ref.max())
