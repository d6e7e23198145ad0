"""Elastic labels (C11, C12, C44, K_VRH, G_VRH in GPa) for cubic crystals with SevenNet.

Runs in its own environment (``make labels`` creates ``.venv-label`` with torch + sevenn + ase);
this module imports only numpy, ase and sevenn so it never touches the main environment.

Protocol (see data/fcc/DATA_CARD.md):
1. relax cell and ions with the space-group symmetry fixed (ASE ``FixSymmetry`` +
   ``FrechetCellFilter`` + BFGS, force tolerance ``fmax`` eV/Å);
2. apply +-``strain`` normal strain e_xx and engineering shear strain e_yz (Cartesian axes are
   the cube axes), relax the ions at fixed cell, read the stress;
3. central differences: C11 = dS_xx/de_xx, C12 = mean(dS_yy, dS_zz)/de_xx, C44 = dS_yz/dg_yz;
4. Voigt-Reuss-Hill averages for cubic symmetry; Born stability C11-C12>0, C11+2C12>0, C44>0.
   The shear pair runs first: a row with C44 <= 0 is written as ``born_unstable`` with C11,
   C12, K_VRH and G_VRH null (the normal-strain pair is skipped). A relaxation that does not
   converge within ``--max-steps`` is written as ``unconverged`` without strains.

Input: JSON lines with material_id, cell (Å), numbers, positions (Cartesian Å).
Output: JSON lines, one per material, appended as soon as it is done; a rerun skips ids
already present in the output (resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

EV_A3_TO_GPA = 160.21766208
POTENTIAL = "7net-l3i5"


def vrh_cubic(c11: float, c12: float, c44: float) -> tuple[float, float]:
    """Voigt-Reuss-Hill bulk and shear moduli (GPa) of a cubic crystal from C11, C12, C44."""
    k = (c11 + 2.0 * c12) / 3.0
    gv = (c11 - c12 + 3.0 * c44) / 5.0
    d = c11 - c12
    gr = 5.0 * d * c44 / (4.0 * c44 + 3.0 * d) if (4.0 * c44 + 3.0 * d) != 0 else float("nan")
    return k, 0.5 * (gv + gr)


def born_stable(c11: float, c12: float, c44: float) -> bool:
    """Born stability criteria of a cubic crystal."""
    return c11 - c12 > 0 and c11 + 2.0 * c12 > 0 and c44 > 0


def _atoms(rec: dict):
    from ase import Atoms

    return Atoms(numbers=rec["numbers"], positions=rec["positions"], cell=rec["cell"], pbc=True)


def _relax_ions(atoms, fmax: float, steps: int) -> int:
    from ase.optimize import BFGS

    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return opt.nsteps


def _strained_stress(atoms0, calc, eps: np.ndarray, fmax: float, steps: int) -> np.ndarray:
    """Stress (Voigt, eV/Å^3) after applying small strain ``eps`` (3x3) and relaxing ions."""
    from ase.constraints import FixSymmetry

    atoms = atoms0.copy()
    atoms.calc = calc
    f = np.eye(3) + eps
    atoms.set_cell(atoms0.cell.array @ f.T, scale_atoms=True)
    # Keep the symmetry left by the strain: ions relax along the internal-strain modes only,
    # never into soft modes that would make the finite differences meaningless.
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-4))
    n = _relax_ions(atoms, fmax, steps)
    if n >= steps:
        raise RuntimeError(f"ion relaxation under strain not converged in {steps} steps")
    atoms.set_constraint()
    return atoms.get_stress(voigt=True)


def strain_steps(max_steps: int) -> int:
    """BFGS step cap of the ion relaxation at each strain (cell fixed, small displacement)."""
    return max(max_steps // 2, 20)


def _num(v: float | None) -> float | None:
    return None if v is None else float(v)


def label_one(rec: dict, calc, strain: float, fmax: float, max_steps: int) -> dict:
    """Relax one structure and compute its cubic elastic constants and VRH moduli (GPa)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    t0 = time.time()
    atoms = _atoms(rec)
    atoms.calc = calc
    atoms.set_constraint(FixSymmetry(atoms))
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    converged = opt.run(fmax=fmax, steps=max_steps)
    atoms.set_constraint()
    relaxed = atoms.copy()
    e_pa = float(atoms.get_potential_energy()) / len(atoms)
    if not converged:  # unusable whatever the strains say (merge drops it): skip them
        return {"material_id": rec["material_id"], "status": "unconverged",
                "relax_converged": False, "relax_steps": int(opt.nsteps),
                "energy_per_atom_eV": e_pa, "volume_A3": float(relaxed.get_volume()),
                "seconds": round(time.time() - t0, 3)}

    def stress(eps):
        return _strained_stress(relaxed, calc, eps, fmax, strain_steps(max_steps))

    exx = np.zeros((3, 3))
    exx[0, 0] = strain
    gyz = np.zeros((3, 3))
    gyz[1, 2] = gyz[2, 1] = strain / 2.0
    # Shear first: most Born-unstable substitutions have C44 <= 0, and then the two
    # normal-strain relaxations (half the strain work) are skipped.
    tp, tm = stress(gyz), stress(-gyz)
    c44 = (tp[3] - tm[3]) / (2 * strain) * EV_A3_TO_GPA
    c11 = c12 = k = g = None
    if c44 > 0:
        sp, sm = stress(exx), stress(-exx)
        c11 = (sp[0] - sm[0]) / (2 * strain) * EV_A3_TO_GPA
        c12 = 0.5 * ((sp[1] - sm[1]) + (sp[2] - sm[2])) / (2 * strain) * EV_A3_TO_GPA
        k, g = vrh_cubic(c11, c12, c44)
    stable = c11 is not None and born_stable(c11, c12, c44)
    vol = relaxed.get_volume()
    return {
        "material_id": rec["material_id"],
        "status": "ok" if stable else "born_unstable",
        "relax_converged": bool(converged),
        "relax_steps": int(opt.nsteps),
        "C11": _num(c11), "C12": _num(c12), "C44": float(c44),
        "K_VRH": _num(k), "G_VRH": _num(g),
        "energy_per_atom_eV": e_pa,
        "volume_A3": float(vol),
        "cell": relaxed.cell.array.tolist(),
        "numbers": relaxed.numbers.tolist(),
        "positions": relaxed.positions.tolist(),
        "seconds": round(time.time() - t0, 3),
    }


def _done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text().splitlines():
        try:
            ids.add(json.loads(line)["material_id"])
        except (json.JSONDecodeError, KeyError):
            continue  # a torn last line from a killed run: that material is redone
    return ids


def main(argv: list[str] | None = None) -> int:
    """Label the materials of an input JSONL file, appending results (resumable)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path, help="JSON lines of unlabelled structures")
    p.add_argument("output", type=Path, help="JSON lines of labels (appended; resumable)")
    p.add_argument("--strain", type=float, default=0.005, help="finite strain (fraction)")
    p.add_argument("--fmax", type=float, default=1e-3, help="force tolerance (eV/Å)")
    p.add_argument("--max-steps", type=int, default=60,
                   help="BFGS step cap of the full relaxation (a cubic cell converges in "
                        "<= 36 steps for 99%% of the Born-stable materials; beyond that the "
                        "row is written as unconverged and its strains are skipped)")
    p.add_argument("--device", default="cpu", help="torch device for SevenNet (cpu, cuda)")
    p.add_argument("--shard", default="0/1", help="i/n: label every n-th material from i")
    p.add_argument("--limit", type=int, default=0, help="stop after this many (0: all)")
    p.add_argument("--seed", type=int, default=0, help="torch/numpy seed")
    p.add_argument("--skip", type=Path, nargs="*", default=[],
                   help="other label files whose ids are already done")
    p.add_argument("--shuffle", action="store_true", help="label in a seeded random order")
    a = p.parse_args(argv)

    import sevenn
    import torch
    from sevenn.calculator import SevenNetCalculator

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    calc = SevenNetCalculator(POTENTIAL, device=a.device)
    i, n = (int(v) for v in a.shard.split("/"))
    recs = [json.loads(x) for x in a.input.read_text().splitlines() if x.strip()]
    recs = recs[i::n]
    done = _done_ids(a.output).union(*(_done_ids(x) for x in a.skip))
    todo = [r for r in recs if r["material_id"] not in done]
    if a.shuffle:
        import random

        random.Random(a.seed).shuffle(todo)
    if a.limit:
        todo = todo[: a.limit]
    prov = {
        "potential": POTENTIAL, "sevenn_version": sevenn.__version__,
        "torch_version": torch.__version__, "strain": a.strain, "fmax_eV_A": a.fmax,
        "max_steps": a.max_steps, "max_strain_steps": strain_steps(a.max_steps),
        "seed": a.seed, "device": a.device,
    }
    print(f"shard {a.shard}: {len(recs)} materials, {len(done)} done, {len(todo)} to label",
          flush=True)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    with a.output.open("a") as out:
        for k, rec in enumerate(todo, 1):
            try:
                row = label_one(rec, calc, a.strain, a.fmax, a.max_steps)
            except Exception as exc:  # one bad material must not stop the batch
                row = {"material_id": rec["material_id"], "status": "failed",
                       "error": f"{type(exc).__name__}: {exc}"[:300]}
            row.update(prov)
            out.write(json.dumps(row) + "\n")
            out.flush()
            if k % 25 == 0:
                print(f"shard {a.shard}: {k}/{len(todo)}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
