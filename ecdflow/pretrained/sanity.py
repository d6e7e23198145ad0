"""Sanity table of the shipped models (issue 15 item 3): predictions with intervals for a few
well-known Fm-3m crystals built from their experimental lattice constants, beside the
materials table's label, the model's out-of-fold prediction for that table row (an honest
out-of-sample number: the shipped members were trained on the table), WIEN2k and experiment.
Run by ``ecdflow pretrained sanity`` (writes ``docs/results/sanity.md``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecdflow.pretrained import OOF, shipped_for
from ecdflow.schema import TARGETS


@dataclass(frozen=True)
class Crystal:
    """An Fm-3m crystal: species at 4a (0,0,0) and, for a binary, 4b (1/2,1/2,1/2); cubic
    lattice constant ``a`` (Å, room temperature, experiment) and the source it was checked
    against, with the value that source gives."""

    name: str
    species: tuple[str, ...]
    a: float
    source: str

    def structure(self):
        """The conventional cubic pymatgen Structure (8 or 4 sites)."""
        from pymatgen.core import Lattice, Structure

        coords = [[0, 0, 0], [0.5, 0.5, 0.5]][:len(self.species)]
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(self.a), list(self.species),
                                         coords)


CRYSTALS = (
    Crystal("NaCl", ("Na", "Cl"), 5.6402,
            "R. Toreki, Interactive Learning Paradigms, 'NaCl' structure page "
            "(www.ilpi.com/inorganic/structures/nacl): a = 5.6402 Å"),
    Crystal("MgO", ("Mg", "O"), 4.212,
            "Wikipedia 'Magnesium oxide' infobox: a = 4.212 Å (Handbook of Mineralogy, periclase: "
            "a = 4.203-4.212 Å)"),
    Crystal("LiF", ("Li", "F"), 4.026,
            "Wikipedia (de) 'Lithiumfluorid': a = 402.6 pm (the English article's infobox gives "
            "403.51 pm, not used)"),
    Crystal("TiC", ("Ti", "C"), 4.327,
            "broadcarbide.com, titanium carbide structure page: a = 0.4327 nm"),
    Crystal("Cu", ("Cu",), 3.6147,
            "copper data sheet (www.metrometaliks.com/faq, 'lattice parameters at 293 K'): "
            "3.6147 x 10^-10 m; same value in the Cu-oxides table of html.scirp.org "
            "(_6-4800377_5)"),
    Crystal("Al", ("Al",), 4.04959,
            "Princeton Scientific, aluminium single-crystal data sheet: fcc, a = 404.959 pm"),
    Crystal("Ni", ("Ni",), 3.524,
            "general-chemistry text 'Unit Cells: Measuring the Distance Between Particles' "
            "(copy at appassets.softecksblog.in/engineering_physics/assets/ep1/6.htm): X-ray "
            "cell edge of nickel 0.3524 nm"),
    Crystal("Ag", ("Ag",), 4.086,
            "X-ray cell edge of silver, 408.6 pm (NCERT Chemistry XII exercise, "
            "www.devacademy22.com)"),
    Crystal("Au", ("Au",), 4.0786,
            "L. G. Berry (ed.), Selected Powder Diffraction Data for Minerals (JCPDS, 1974), "
            "as quoted at tele.ed.nom.br/ourobi.html: a = 4.0786 Å"),
)
"""The issue's sanity set; rocksalt (NaCl, MgO, LiF, TiC) and fcc metals."""


def _table_rows(table: Path) -> dict[str, dict]:
    """Table rows by reduced formula (first row of each)."""
    from ecdflow.data.table import read_rows

    out: dict[str, dict] = {}
    for r in read_rows(table):
        out.setdefault(str(r.get("formula")), r)
    return out


def _cubic_a(row: dict) -> float:
    """Conventional cubic a (Å) of a table row (primitive fcc cell: a = sqrt(2) |a1|)."""
    import numpy as np

    return float(math.sqrt(2) * np.linalg.norm(np.asarray(row["cell"], float)[0]))


def sanity_frame(table: Path) -> pd.DataFrame:
    """One row per crystal and target: a (Å), prediction, lower, upper (GPa), out_of_domain,
    table label and its a, out-of-fold prediction of that row, WIEN2k (dcdft, K only) and
    experiment (pymatgen ``Element``), GPa; NaN where there is none."""
    import mlflow.pyfunc

    from ecdflow.external import load_dcdft_reference, load_experimental_reference

    rows = _table_rows(table)
    wien = load_dcdft_reference().set_index("formula")
    exp = load_experimental_reference().set_index("formula")
    inputs = pd.DataFrame({"input": [c.structure().to_json() for c in CRYSTALS],
                           "format": "json", "source": [c.name for c in CRYSTALS]})
    out = []
    for target in TARGETS:  # WIEN2k (dcdft) has K only: its G_VRH column is NaN
        ship = shipped_for(target)
        pred = mlflow.pyfunc.load_model(str(ship.path)).predict(inputs)
        oof = json.loads((ship.path / "artifacts" / OOF).read_text())
        oof_of = dict(zip(oof["material_id"], oof["y_pred"], strict=True))
        for c, p in zip(CRYSTALS, pred.itertuples(), strict=True):
            row = rows.get(c.name)
            nan = math.nan
            out.append({
                "target": target, "model": ship.name, "crystal": c.name, "a_A": c.a,
                "source": c.source, "error": p.error,
                "prediction": nan if p.prediction is None else float(p.prediction),
                "lower": nan if p.lower is None else float(p.lower),
                "upper": nan if p.upper is None else float(p.upper),
                "coverage": p.coverage, "out_of_domain": p.out_of_domain,
                "ood_reason": p.ood_reason or "",
                "table_id": row["material_id"] if row else "",
                "table_a_A": _cubic_a(row) if row else nan,
                "table_label": float(row[target]) if row and row.get(target) is not None
                else nan,
                "table_oof": oof_of.get(row["material_id"], nan) if row else nan,
                "wien2k": float(wien[target][c.name]) if c.name in wien.index else nan,
                "experiment": float(exp[target][c.name]) if c.name in exp.index else nan,
            })
    return pd.DataFrame(out)


def _g(v: float, digits: int = 1) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def render(df: pd.DataFrame, table: Path) -> str:
    """Markdown of :func:`sanity_frame`: one table per target, then the sources."""
    from ecdflow.results import markdown_table

    parts = ["# Sanity table: shipped models on well-known crystals", "",
             "Made by `ecdflow pretrained sanity` (ecdflow/pretrained/sanity.py); moduli in GPa. "
             "Each crystal is built with pymatgen (Fm-3m, conventional cell) from its "
             "room-temperature experimental lattice constant `a` and predicted by the shipped "
             "model (`ecdflow/pretrained/<name>/`, the same pyfunc `ecdflow predict` loads) "
             "with its split-conformal interval. Beside it: the label of the same formula in "
             f"`{table.as_posix()}` (SevenNet at its own relaxed `a`), the shipped model's "
             "out-of-fold prediction of that table row (out-of-sample: the row's fold member "
             "never saw it; the prediction column is *not* out-of-sample for table materials),"
             " WIEN2k (PBE equation-of-state B0 of the dcdft set, data/references/, K only) and "
             "experiment (pymatgen `Element.bulk_modulus`/`rigidity_modulus`, elements only)."
             " Empty: the repo has no such value. The interval is prediction ± q (absolute "
             "residual score, `ecdflow.uncertainty`), its lower end clipped at 0 GPa (a "
             "modulus is positive).", ""]
    for target, d in df.groupby("target", sort=False):
        cov = d.coverage.dropna()
        parts += [f"## {target} (`{d.model.iloc[0]}`, interval "
                  f"{100 * float(cov.iloc[0]) if len(cov) else float('nan'):.0f}%)", ""]
        view = pd.DataFrame({
            "crystal": d.crystal, "a (Å)": [f"{v:g}" for v in d.a_A],
            "prediction": [_g(v) for v in d.prediction],
            "interval": [f"[{_g(lo)}, {_g(hi)}]" for lo, hi in zip(d.lower, d.upper,
                                                                  strict=True)],
            "out of domain": ["yes" if v else "no" if v is not None else "" for v in
                              d.out_of_domain],
            "table label": [_g(v) for v in d.table_label],
            "table a (Å)": [_g(v, 3) for v in d.table_a_A],
            "out-of-fold": [_g(v) for v in d.table_oof],
            "WIEN2k": [_g(v) for v in d.wien2k], "experiment": [_g(v) for v in d.experiment],
        })
        parts += [markdown_table(view), ""]
        notes = [f"- {c}: out of domain: {r}" for c, r in zip(d.crystal, d.ood_reason,
                                                              strict=True) if r]
        notes += [f"- {c}: refused: {e}" for c, e in zip(d.crystal, d.error, strict=True) if e]
        parts += [*notes, ""] if notes else []
    parts += ["## Lattice constants", ""]
    for src in dict.fromkeys(c.source for c in CRYSTALS):  # sources in the table's order
        names = ", ".join(f"{c.name} {c.a} Å" for c in CRYSTALS if c.source == src)
        parts.append(f"- {names}: {src}.")
    parts.append("")
    return "\n".join(parts)


def write_sanity(table: Path, out: Path) -> pd.DataFrame:
    """Compute :func:`sanity_frame` and write its Markdown to ``out``; returns the frame."""
    df = sanity_frame(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(df, table))
    return df
