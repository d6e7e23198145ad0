"""Procrystal vs a self-consistent DFT valence density for rocksalt NaCl (optional pyscf).

    pip install -r requirements/dft.txt        # pyscf, not part of the main lock
    python -m ecdflow.data.scf_check            # -> data/fcc/scf-check.json (~3 min CPU)

Periodic Kohn-Sham DFT with pyscf (PBE; GTH pseudopotentials GTH-PBE-q1 for Na and
GTH-PBE-q7 for Cl, so both densities hold the same 8 valence electrons per formula unit as
the procrystal; basis gth-dzvp; 3x3x3 k-point mesh on the 2-atom primitive cell, 120 Ha FFT
cutoff) of NaCl at the committed table's relaxed lattice constant. The SCF valence (pseudo)
density is evaluated at the procrystal's grid points (conventional cube, i/N of each edge,
same origin: the heavier atom, Cl; ``ecdflow.density.procrystal_density`` with its 0.1 Å
smearing) and compared point by point: Pearson correlation, relative L1 distance
sum|rho_scf - rho_pro| / sum|rho_scf|, electron count of each cube, peak density (e/Å^3).
``ecdflow data card`` copies the result into the data card.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ecdflow.config import REPO_ROOT
from ecdflow.data.merge import iter_jsonl

OUT = REPO_ROOT / "data" / "fcc" / "scf-check.json"
SETTINGS = {"xc": "PBE", "pseudo": {"Na": "GTH-PBE-q1", "Cl": "GTH-PBE-q7"},
            "basis": "gth-dzvp", "kmesh": [3, 3, 3], "ke_cutoff_Ha": 120.0, "grid": 32,
            "smearing_A": 0.1, "material_id": "rocksalt-ionic:NaCl"}


def scf_vs_procrystal(settings: dict = SETTINGS, verbose: int = 0) -> dict:
    """Run the SCF and compare (see the module docstring). Raises ImportError without pyscf."""
    from pyscf.pbc import dft, gto

    from ecdflow.cube import conventional_cell
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density

    row = next(r for r in iter_jsonl(REPO_ROOT / "data/fcc/materials.jsonl")
               if r["material_id"] == settings["material_id"])
    s = structure_of(row)
    conv = conventional_cell(s)  # the procrystal's frame: Cl at the origin
    n = int(settings["grid"])
    rho_pro = procrystal_density(s, grid=n, smearing_A=settings["smearing_A"])
    cl = next(site for site in conv if site.specie.symbol == "Cl").coords
    half = conv.lattice.a / 2.0
    cell = gto.Cell()
    cell.a = [[0.0, half, half], [half, 0.0, half], [half, half, 0.0]]  # fcc primitive
    cell.atom = [("Cl", cl.tolist()), ("Na", (cl + [half, 0.0, 0.0]).tolist())]
    cell.basis = settings["basis"]
    cell.pseudo = settings["pseudo"]
    cell.unit = "A"
    cell.ke_cutoff = settings["ke_cutoff_Ha"]  # plane-wave cutoff of the FFT density fitting
    cell.verbose = verbose
    cell.build()
    kpts = cell.make_kpts(settings["kmesh"])
    mf = dft.KRKS(cell, kpts=kpts)
    mf.xc = settings["xc"]
    t0 = time.perf_counter()
    energy = mf.kernel()
    seconds = time.perf_counter() - t0
    # the SCF density at the procrystal's grid points: i/N of the conventional cube, x slowest
    frac = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), -1).reshape(-1, 3)
    coords = (frac @ conv.lattice.matrix) / 0.529177210903  # Å -> Bohr
    ao = cell.pbc_eval_gto("GTOval", coords, kpts=kpts)
    rho_scf = np.asarray(mf._numint.eval_rho(cell, ao, mf.make_rdm1(), hermi=1)).real
    rho_scf = rho_scf.reshape(n, n, n) / 0.529177210903**3  # e/Bohr^3 -> e/Å^3
    vol = conv.lattice.volume
    x, y = rho_scf.ravel(), rho_pro.ravel()
    return {
        "settings": settings, "converged": bool(mf.converged), "energy_Ha": float(energy),
        "scf_seconds": round(seconds, 1), "a_A": float(conv.lattice.a),
        "electrons_scf": float(x.sum() * vol / x.size),
        "electrons_procrystal": float(y.sum() * vol / y.size),
        "correlation": float(np.corrcoef(x, y)[0, 1]),
        "rel_L1": float(np.abs(x - y).sum() / np.abs(x).sum()),
        "rho_max_scf": float(x.max()), "rho_max_procrystal": float(y.max()),
    }


def main() -> int:
    """Write data/fcc/scf-check.json; one line and exit code 1 without pyscf."""
    try:
        import pyscf  # noqa: F401
    except ImportError:
        print("ecdflow.data.scf_check: pyscf is not installed "
              "(pip install -r requirements/dft.txt)", file=sys.stderr)
        return 1
    res = scf_vs_procrystal()
    OUT.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(f"NaCl procrystal vs SCF: correlation {res['correlation']:.4f}, relative L1 "
          f"{res['rel_L1']:.3f} -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
