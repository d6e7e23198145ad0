"""Write the odd and bad input files of tests/inputs/ (run: python tests/inputs/make_inputs.py).

Every file is tiny (8^3 density grids) and byte-reproducible (gzip mtime 0, fixed text); the
expected outcome of each, per entry point, is in expected.yaml beside this script.

The CHGCAR-like files hold a synthetic density on the 4-atom Cu cube (a = 3.61 Å): values
rho*V = 44 * (1 + 0.5 cos(2 pi i/8)) along x, so the total block integrates to exactly 44
electrons (4 x 11, the PAW Cu valence) and the density varies (a model can tell it from a
procrystal one). Spin-polarised files add a magnetisation block integrating to 2, and
non-collinear ones three blocks (1, 2, 3); a reader taking the wrong block gets another count.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRID = 8
CU_A = 3.61


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as fh:
        fh.write(data)
    return buf.getvalue()


def _poscar(comment: str, a: float, names: list[str] | None, counts: list[int],
            frac: list[list[float]]) -> str:
    lines = [comment, "1.0", f"  {a:.6f} 0.0 0.0", f"  0.0 {a:.6f} 0.0", f"  0.0 0.0 {a:.6f}"]
    if names:
        lines.append(" ".join(names))
    lines += [" ".join(map(str, counts)), "Direct"]
    lines += ["  ".join(f"{v:.6f}" for v in p) for p in frac]
    return "\n".join(lines) + "\n"


FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
NACL = FCC + [[(x + 0.5) % 1, y, z] for x, y, z in FCC]


def _block(mean: float, wave: float) -> str:
    vals = [mean * (1 + wave * math.cos(2 * math.pi * i / GRID))
            for _k in range(GRID) for _j in range(GRID) for i in range(GRID)]
    rows = [" ".join(f"{v:.11E}" for v in vals[i:i + 5]) for i in range(0, len(vals), 5)]
    return f"{GRID} {GRID} {GRID}\n" + "\n".join(rows) + "\n"


def _aug() -> str:
    return "".join(f"augmentation occupancies {i} 2\n  0.1000000E+00 0.2000000E+00\n"
                   for i in (1, 2, 3, 4))


def chgcar(names: list[str] | None = ("Cu",), extra_blocks: tuple[float, ...] = (),
           aug: bool = False) -> str:
    """A Cu CHGCAR: total block (44 e) then magnetisation blocks with the given integrals."""
    text = _poscar("Cu fcc synthetic density", CU_A, list(names) if names else None, [4],
                   FCC) + "\n" + _block(44.0, 0.5)
    if aug:
        text += _aug()
    for m in extra_blocks:
        text += "\n" + _block(m, 0.3) + (_aug() if aug else "")
    return text


def nacl_cif() -> str:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    s = Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, NACL)
    return str(CifWriter(s))


def fcc_cif(el: str, a: float) -> str:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(Structure(Lattice.cubic(a), [el] * 4, FCC)))


def nacl_json() -> str:
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, NACL)
    return json.dumps(s.as_dict(), sort_keys=True)


FORMULA_ROWS = [("t-1", "NaCl", 24.9, 14.6), ("t-2", "KCl", 17.0, 9.5),
                ("t-3", "Cu", 140.0, 48.0), ("t-4", "Ar", 2.9, 1.2),
                ("t-5", "NaCl2x", 20.0, 10.0), ("t-6", "nacl", 20.0, 10.0),
                ("t-7", "", 20.0, 10.0), ("t-8", "Ne", 1.1, 0.6),
                ("t-9", "NaN", 30.0, 15.0)]  # the rocksalt NaN, not a missing value


def files() -> dict[str, bytes]:
    """File name -> bytes of every fixture."""
    cif = nacl_cif()
    poscar = _poscar("NaCl rocksalt", 5.64, ["Na", "Cl"], [4, 4], NACL)
    cu = chgcar()
    out: dict[str, str | bytes] = {
        "NaCl.cif": cif,
        "NaCl_latin1.cif": ("# exported by Müller's database (Latin-1)\n" + cif
                            ).encode("latin-1"),
        "NaCl_bom_crlf.cif": b"\xef\xbb\xbf" + cif.replace("\n", "\r\n").encode(),
        "NaCl.cif.gz": _gzip(cif.encode()),
        "NaCl_gzip_no_suffix": _gzip(cif.encode()),
        "POSCAR": poscar,
        "POSCAR.bz2": bz2.compress(poscar.encode()),
        "POSCAR_crlf.vasp": poscar.replace("\n", "\r\n"),
        "POSCAR_vasp4": _poscar("rocksalt", 5.64, None, [4, 4], NACL),
        "POSCAR_vasp4_comment": _poscar("Na Cl", 5.64, None, [4, 4], NACL),
        "NaCl.json.xz": lzma.compress(nacl_json().encode()),
        "NaCl_formula.txt": "NaCl\n",
        "CHGCAR_Cu": cu,
        "Cu.vasp": cu,  # a CHGCAR under a POSCAR name
        "Cu_chgcar.cif": cu,
        "Cu_chgcar.txt": cu,
        "CHGCAR_Cu.gz": _gzip(cu.encode()),
        "CHGCAR_Cu.bz2": bz2.compress(cu.encode()),
        "CHGCAR_Cu.xz": lzma.compress(cu.encode()),
        "CHGCAR_spin": chgcar(extra_blocks=(2.0,), aug=True),
        "CHGCAR_noncollinear": chgcar(extra_blocks=(1.0, 2.0, 3.0), aug=True),
        "AECCAR2_Cu": chgcar(aug=True),
        "CHGCAR_vasp4": chgcar(names=None),
        "CHGCAR_truncated.gz": _gzip(cu[: len(cu) * 2 // 3].encode()),
        "corrupt.gz": _gzip(cu.encode())[:200],
        "Ar.cif": fcc_cif("Ar", 5.26),
        "POSCAR_Ne": _poscar("Ne fcc", 4.46, ["Ne"], [4], FCC),
        "H_fcc.cif": fcc_cif("H", 4.50),
        "junk.txt": "this is not a crystal, just some notes\nline two\n",
        "junk.cif": "this is not a crystal\n",
        "empty.cif": "",
        "empty.gz": _gzip(b""),
        "binary.bin": bytes(range(256)),
        "formulas.csv": "material_id,formula,K_VRH,G_VRH\n" + "".join(
            f"{m},{f},{k},{g}\n" for m, f, k, g in FORMULA_ROWS),
        "formulas_semicolon.csv": ("material_id;formula;K_VRH;G_VRH\n" + "".join(
            f"{m};{f};{str(k).replace('.', ',')};{str(g).replace('.', ',')}\n"
            for m, f, k, g in FORMULA_ROWS[:4])).replace("\n", "\r\n").encode("cp1252"),
        "formulas_bom.tsv": b"\xef\xbb\xbf" + ("material_id\tformula\tK_VRH\tG_VRH\n" + "".join(
            f"{m}\t{f}\t{k}\t{g}\n" for m, f, k, g in FORMULA_ROWS[:3])).encode(),
        "formulas.jsonl.gz": _gzip("".join(json.dumps(
            {"material_id": m, "formula": f, "K_VRH": k, "G_VRH": g}) + "\n"
            for m, f, k, g in FORMULA_ROWS[:4]).encode()),
    }
    return {k: v.encode() if isinstance(v, str) else v for k, v in out.items()}


def write(folder: Path = HERE) -> list[Path]:
    """Write every fixture into ``folder``; returns the paths."""
    paths = []
    for name, data in files().items():
        p = folder / name
        p.write_bytes(data)
        paths.append(p)
    return paths


if __name__ == "__main__":
    print(f"{len(write())} files -> {HERE}")
