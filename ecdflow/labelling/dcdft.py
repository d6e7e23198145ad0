"""Reference inputs for checking the labeller: fcc non-magnetic metals of ase.collections.dcdft.

The dcdft collection (Lejaeghere et al., Science 2016 "Delta" test) ships WIEN2k
equation-of-state data: equilibrium volume V0 (Å^3/atom) and bulk modulus B0 (GPa).
Only ase and numpy are imported, so this runs in the labelling environment.
"""

from __future__ import annotations

import json
import sys

FCC_NONMAGNETIC = ["Al", "Ca", "Cu", "Sr", "Rh", "Pd", "Ag", "Ir", "Pt", "Au", "Pb", "Ne"]
"""dcdft elements whose ground state in the collection is fcc and non-magnetic."""
METALS = [e for e in FCC_NONMAGNETIC if e != "Ne"]


def references() -> list[dict]:
    """One record per fcc dcdft metal: cube-aligned primitive cell at the WIEN2k volume,
    with the WIEN2k bulk modulus (GPa) under ``K_ref``."""
    from ase.build import bulk
    from ase.collections import dcdft

    out = []
    for el in METALS:
        v0, b0 = dcdft.data[el]["wien2k_volume"], dcdft.data[el]["wien2k_B"]
        a = (4.0 * v0) ** (1.0 / 3.0)
        at = bulk(el, "fcc", a=a)
        out.append({
            "material_id": f"dcdft:{el}", "formula": el, "family": "fcc-element",
            "cell": at.cell.array.tolist(), "numbers": at.numbers.tolist(),
            "positions": at.positions.tolist(), "K_ref": float(b0),
        })
    return out


if __name__ == "__main__":
    for rec in references():
        sys.stdout.write(json.dumps(rec) + "\n")
