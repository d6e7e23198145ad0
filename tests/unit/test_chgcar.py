"""CHGCAR reading (VASP 5/4, spin, augmentation, bad files), resampling and writing."""

import numpy as np
import pytest

from ecdflow.chgcar import read_chgcar, to_model_grid, write_chgcar
from ecdflow.density import density_on_cell, procrystal_density
from ecdflow.errors import InputError


def _vasp_text(structure, rho, vasp4=False, extra="") -> str:
    """A hand-written CHGCAR (x fastest, values rho*V) like VASP's own."""
    lines = ["test system", "1.0"]
    lines += ["  ".join(f"{v:.10f}" for v in row) for row in structure.lattice.matrix]
    syms = [s.specie.symbol for s in structure]
    names = list(dict.fromkeys(syms))
    if not vasp4:
        lines.append(" ".join(names))
    lines.append(" ".join(str(syms.count(n)) for n in names))
    lines.append("Direct")
    order = sorted(range(len(syms)), key=lambda i: names.index(syms[i]))
    lines += ["  ".join(f"{v:.8f}" for v in structure[i].frac_coords) for i in order]
    lines += ["", " ".join(str(n) for n in rho.shape)]
    vals = (rho * structure.volume).transpose(2, 1, 0).ravel()
    lines += [" ".join(f"{v:.11E}" for v in vals[i:i + 5]) for i in range(0, vals.size, 5)]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def prim_rho(nacl_prim):
    """NaCl primitive-cell procrystal on a non-cubic 20x24x28 grid."""
    return density_on_cell(nacl_prim, (20, 24, 28))


def test_round_trip_keeps_structure_and_density(tmp_path, nacl_prim, prim_rho):
    path = write_chgcar(tmp_path / "CHGCAR", nacl_prim, prim_rho)
    s, rho = read_chgcar(path)
    assert rho.shape == (20, 24, 28)
    np.testing.assert_allclose(rho, prim_rho, rtol=1e-5, atol=1e-6)
    assert s.composition.reduced_formula == "NaCl"
    assert s.volume == pytest.approx(nacl_prim.volume, rel=1e-6)


def test_noncubic_primitive_grid_resamples_onto_the_procrystal_cube(nacl_prim, prim_rho,
                                                                    nacl_conv):
    cube = to_model_grid(nacl_prim, prim_rho, grid=24)
    ref = procrystal_density(nacl_conv, grid=24)
    assert np.corrcoef(cube.ravel(), ref.ravel())[0, 1] > 0.9999
    assert np.abs(cube - ref).sum() / np.abs(ref).sum() < 0.01


def test_primitive_and_conventional_files_give_same_picture(tmp_path, nacl_prim, nacl_conv):
    a = to_model_grid(nacl_prim, density_on_cell(nacl_prim, (24, 24, 24)), grid=20)
    b = to_model_grid(nacl_conv, density_on_cell(nacl_conv, (40, 40, 40)), grid=20)
    assert np.abs(a - b).sum() / np.abs(b).sum() < 0.01


def test_vasp4_needs_elements_and_takes_them_from_argument_or_poscar(tmp_path, nacl_prim,
                                                                     prim_rho):
    path = tmp_path / "CHGCAR"
    path.write_text(_vasp_text(nacl_prim, prim_rho, vasp4=True))
    with pytest.raises(InputError, match="VASP 4"):
        read_chgcar(path)
    s, rho = read_chgcar(path, elements=["Na", "Cl"])
    assert [x.specie.symbol for x in s] == ["Na", "Cl"]
    (tmp_path / "POSCAR").write_text("x\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n1 1\nDirect\n"
                                     "0 0 0\n0.5 0.5 0.5\n")
    s2, rho2 = read_chgcar(path)
    assert s2.composition.reduced_formula == "NaCl"
    np.testing.assert_allclose(rho2, prim_rho, rtol=1e-5, atol=1e-6)


def test_spin_block_and_augmentation_are_ignored(tmp_path, nacl_prim, prim_rho):
    aug = "augmentation occupancies 1 4\n 0.1 0.2 0.3 0.4\n"
    spin = aug + "\n20 24 28\n" + " ".join(["9.9E+01"] * (20 * 24 * 28)) + "\n" + aug
    path = tmp_path / "CHGCAR"
    path.write_text(_vasp_text(nacl_prim, prim_rho, extra=spin))
    _, rho = read_chgcar(path)
    np.testing.assert_allclose(rho, prim_rho, rtol=1e-5, atol=1e-6)


def test_negative_pseudo_density_is_kept(tmp_path, nacl_prim, prim_rho):
    neg = prim_rho.copy()
    neg[0, 0, 0] = -0.05
    path = tmp_path / "CHGCAR"
    path.write_text(_vasp_text(nacl_prim, neg))
    _, rho = read_chgcar(path)
    assert rho[0, 0, 0] == pytest.approx(-0.05, rel=1e-5)


def _nan(text: str) -> str:
    head, _, tail = text.partition("\n20 24 28\n")
    return head + "\n20 24 28\nNaN " + tail.split(" ", 1)[1]


@pytest.mark.parametrize("mangle,message", [
    (lambda t: t[: len(t) // 2], "truncated"),
    (lambda t: t.replace("\n20 24 28\n", "\n20 24\n"), "grid counts"),
    (lambda t: t.replace("\n20 24 28\n", "\n20 24 99\n"), "truncated"),
    (_nan, "NaN/inf"),
    (lambda t: "\n".join(t.splitlines()[:6]), "truncated"),
    (lambda t: t.replace("Na Cl", "Na Qq"), "unknown element"),
])
def test_bad_files_are_one_line_input_errors(tmp_path, nacl_prim, prim_rho, mangle, message):
    path = tmp_path / "CHGCAR"
    path.write_text(mangle(_vasp_text(nacl_prim, prim_rho)))
    with pytest.raises(InputError, match=message) as err:
        read_chgcar(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)



def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_chgcar(tmp_path / "nope")


def test_cli_chgcar_writes_the_material_cube(tmp_path, write_jsonl, material_row, capsys):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    table = write_jsonl([material_row])
    out = tmp_path / "nacl.vasp"
    args = ["data", "chgcar", "rocksalt-ionic:NaCl", "-o", str(out), "--table", str(table),
            "--grid", "16"]
    assert run_main(cli, args) == 0
    s, rho = read_chgcar(out)
    assert rho.shape == (16, 16, 16) and len(s) == 8
    assert run_main(cli, [*args[:2], "nope", *args[3:]]) == 2
    assert "no such material_id" in capsys.readouterr().err
