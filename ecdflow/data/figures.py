"""The measured figures of the data card (data/fcc/DATA_CARD.md), computed from committed files.

``ecdflow data card`` runs ``card_figures`` and writes the block between the ``figures``
markers of the card and ``data/fcc/card-figures.json``; every number in that block comes from
here. Three measurements:

- ``gate_metrics``: RF+Magpie 5-fold CV (scikit-learn ``RandomForestRegressor``, 50 trees,
  ``random_state`` 0; ``KFold`` shuffled, seed 0) of K_VRH and G_VRH (R2, RMSE in GPa) on the
  rows the merge kept before the plausibility gate (table + quarantined rows with K and G
  below the former 600 GPa cap), after it, and after it without the marginal rows (C' or C44
  below ``plausibility.marginal_GPa``).
- ``procrystal_limits``: what the procrystal density cannot tell apart (alkali chlorides,
  noble metals) and how many valence electrons it carries vs a VASP PAW potential.
- ``label_checks``: the labeller (SevenNet) on the dcdft fcc metals vs WIEN2k bulk moduli
  (``data/references/dcdft_fcc.jsonl``) and vs pymatgen's experimental K and G.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ecdflow.config import REPO_ROOT, PlausibilityConfig
from ecdflow.data.merge import iter_jsonl

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
DATA_DIR = REPO_ROOT / "data" / "fcc"
DCDFT_CHECK = DATA_DIR / "labels" / "dcdft-check.jsonl"
FORMER_CAP_GPA = 600.0
"""The merge's upper bound on K and G before the plausibility gate (the table had 2,013 rows);
quarantined rows above it are runaway labels (up to 1.6e9 GPa) that no metric survives."""

VASP_PAW_ZVAL = {"Cu": 11, "Ag": 11, "Au": 11}
"""Valence electrons of the standard VASP PBE PAW potentials (POTCAR ``ZVAL``; Cu, Ag, Au:
d10 s1), as used by Materials Project and the paper's VASP densities."""

ALKALI_CHLORIDES = ("NaCl", "KCl", "RbCl", "CsCl")
COMPARE_PAIRS = (("KCl", "RbCl"), ("RbCl", "CsCl"), ("KCl", "CsCl"),
                 ("NaCl", "KCl"), ("KCl", "KBr"))
"""ECD pairs compared; the last two (a lighter alkali, another halide) are the baselines."""


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    res = y - pred
    return {"r2": float(1.0 - np.sum(res**2) / np.sum((y - y.mean()) ** 2)),
            "rmse_GPa": float(np.sqrt(np.mean(res**2)))}


def rf_magpie_cv(rows: list[dict], targets=("K_VRH", "G_VRH"), folds: int = 5,
                 trees: int = 50, seed: int = 0) -> dict:
    """5-fold CV of a random forest on Magpie features: ``{target: {n, r2, rmse_GPa}}``
    (pooled out-of-fold predictions; GPa). Rows that ``ecdflow.features.featurize`` refuses
    are left out, counted in ``n_refused`` (never zero-filled)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    from ecdflow.features import featurize

    x, errors = featurize([r["formula"] for r in rows])
    refused = sum(bool(e) for e in errors)
    if refused:
        rows = [r for r, e in zip(rows, errors, strict=True) if not e]
        x = x[[not e for e in errors]]
    out = {}
    for t in targets:
        y = np.array([float(r[t]) for r in rows])
        pred = np.empty_like(y)
        for tr, te in KFold(folds, shuffle=True, random_state=seed).split(x):
            rf = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1)
            pred[te] = rf.fit(x[tr], y[tr]).predict(x[te])
        out[t] = {"n": len(y), **_metrics(y, pred)} | ({"n_refused": refused} if refused else {})
    return out


def gate_metrics(table: Path, quarantine: Path, cfg: PlausibilityConfig) -> dict:
    """RF+Magpie CV on: ``before_gate`` (table + quarantined rows with K and G below
    ``FORMER_CAP_GPA``: the table as it was before the gate), ``gated`` (the table),
    ``gated_without_marginal``; plus ``n_marginal``."""
    from ecdflow.validation.plausibility import is_marginal

    rows = list(iter_jsonl(table))
    bad = [r for r in (iter_jsonl(quarantine) if quarantine.is_file() else [])
           if all(0.0 < float(r[t]) < FORMER_CAP_GPA for t in ("K_VRH", "G_VRH"))]
    firm = [r for r in rows if not is_marginal(r, cfg)]
    return {
        "protocol": "RandomForestRegressor(n_estimators=50, random_state=0) on 132 Magpie "
                    "features, KFold(5, shuffle=True, random_state=0), pooled out-of-fold",
        "n_marginal": len(rows) - len(firm),
        "before_gate": rf_magpie_cv(rows + bad),
        "gated": rf_magpie_cv(rows),
        "gated_without_marginal": rf_magpie_cv(firm),
    }


def _cube(row: dict, grid: int, cation: str) -> tuple[np.ndarray, float, float]:
    """(rho * a^3 on the grid with ``cation`` at the origin, a in Å, rho at the cation site
    in e/Å^3); rho is the procrystal on the conventional cube."""
    from ecdflow.cube import conventional_cell
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density

    s = structure_of(row)
    conv = conventional_cell(s)
    rho = procrystal_density(s, grid=grid)
    at_origin = min(conv, key=lambda site: np.linalg.norm(
        site.frac_coords - np.round(site.frac_coords))).specie.symbol
    if at_origin != cation:  # rocksalt: the other m-3m site is (1/2, 1/2, 1/2)
        rho = np.roll(rho, grid // 2, axis=(0, 1, 2))
    a = float(conv.lattice.a)
    return rho * a**3, a, float(rho[0, 0, 0])


def _compare(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson correlation and relative L1 distance sum|x - y| / sum|x| of two grids."""
    return {"correlation": float(np.corrcoef(x.ravel(), y.ravel())[0, 1]),
            "rel_L1": float(np.abs(x - y).sum() / np.abs(x).sum())}


def _row_of(formula: str, rows: list[dict]) -> dict:
    return next(r for r in rows if r["formula"] == formula)


def procrystal_limits(table: Path, grid: int = 32) -> dict:
    """What the procrystal cannot represent, measured (grid^3 conventional cubes, densities
    scaled by a^3 so that cubes of different edge a compare point by point, cation at the
    origin):

    - ``pairs``: correlation and relative L1 of the ECDs of alkali chlorides (and baselines);
    - ``cation_site``: a (Å), procrystal density at the cation site (e/Å^3), and the alkali's
      procrystal valence electrons;
    - ``noble_metals``: fcc Cu, Ag, Au (dcdft cells): procrystal valence electrons vs VASP PAW
      ZVAL, and the ECD comparison Cu-Ag, Ag-Au.
    """
    from ecdflow.density import valence_electrons

    rows = list(iter_jsonl(table))
    cation = {"NaCl": "Na", "KCl": "K", "RbCl": "Rb", "CsCl": "Cs", "KBr": "K"}
    cubes = {f: _cube(_row_of(f, rows), grid, c) for f, c in cation.items()}
    pairs = {f"{a}-{b}": _compare(cubes[a][0], cubes[b][0]) for a, b in COMPARE_PAIRS}
    sites = {f: {"a_A": round(cubes[f][1], 3), "rho_cation_e_A3": cubes[f][2],
                 "cation_valence_e": valence_electrons(cation[f])} for f in ALKALI_CHLORIDES}
    dcdft = {r["formula"]: r for r in iter_jsonl(REPO_ROOT / "data/references/dcdft_fcc.jsonl")}
    metal = {m: _cube(dcdft[m], grid, m) for m in ("Cu", "Ag", "Au")}
    noble = {
        "valence": {m: {"procrystal": valence_electrons(m), "vasp_paw": VASP_PAW_ZVAL[m]}
                    for m in VASP_PAW_ZVAL},
        "pairs": {"Cu-Ag": _compare(metal["Cu"][0], metal["Ag"][0]),
                  "Ag-Au": _compare(metal["Ag"][0], metal["Au"][0])},
    }
    return {"grid": grid, "pairs": pairs, "cation_site": sites, "noble_metals": noble}


def label_checks(check: Path = DCDFT_CHECK) -> dict:
    """SevenNet labels of the dcdft fcc metals vs WIEN2k K (dcdft) and vs pymatgen's
    experimental K and G: per element values and errors (GPa, %), and summary statistics."""
    from ecdflow.external import load_dcdft_reference, load_experimental_reference

    lab = {r["formula"] if "formula" in r else r["material_id"].split(":", 1)[1]: r
           for r in iter_jsonl(check) if r.get("status") == "ok"}
    wien = load_dcdft_reference()
    exp = load_experimental_reference().set_index("formula")
    per, dk = [], []
    for _, ref in wien.iterrows():
        f = ref["formula"]
        if f not in lab:
            continue
        k, g = float(lab[f]["K_VRH"]), float(lab[f]["G_VRH"])
        e = exp.loc[f] if f in exp.index else None
        k_exp = float(e["K_VRH"]) if e is not None else math.nan
        g_exp = float(e["G_VRH"]) if e is not None else math.nan
        per.append({"element": f, "K": k, "K_wien2k": float(ref["K_VRH"]), "K_exp": k_exp,
                    "G": g, "G_exp": g_exp,
                    "G_rel_err_pct": 100.0 * (g - g_exp) / g_exp if g_exp > 0 else math.nan})
        dk.append(k - float(ref["K_VRH"]))
    dk_a = np.array(dk)
    g_err = np.array([p["G_rel_err_pct"] for p in per if not math.isnan(p["G_rel_err_pct"])])
    k_exp = np.array([(p["K"] - p["K_exp"]) / p["K_exp"] * 100 for p in per
                      if p["K_exp"] > 0])
    return {
        "per_element": per,
        "K_vs_wien2k": {"n": len(dk_a), "mae_GPa": float(np.abs(dk_a).mean()),
                        "rmse_GPa": float(np.sqrt((dk_a**2).mean())),
                        "mean_signed_GPa": float(dk_a.mean())},
        "K_vs_experiment_pct": {"n": len(k_exp), "mean": float(k_exp.mean()),
                                "mean_abs": float(np.abs(k_exp).mean())},
        "G_vs_experiment_pct": {"n": len(g_err), "mean": float(g_err.mean()),
                                "mean_abs": float(np.abs(g_err).mean()),
                                "min": float(g_err.min()), "max": float(g_err.max())},
    }


def labelling_stats(label_files: list[Path]) -> dict:
    """From the raw labeller output: the 99th percentile of BFGS steps of the full relaxation
    over Born-stable (``ok``) rows, and the median wall time per material on a CPU by atoms
    in the primitive cell (s; one thread per labeller process)."""
    steps, secs = [], {}
    for f in label_files:
        for r in iter_jsonl(f):
            if r.get("status") == "ok" and r.get("relax_steps") is not None:
                steps.append(int(r["relax_steps"]))
            if r.get("device") == "cpu" and r.get("seconds") and r.get("numbers"):
                secs.setdefault(len(r["numbers"]), []).append(float(r["seconds"]))
    return {"ok_rows": len(steps),
            "relax_steps_p99": float(np.percentile(steps, 99)) if steps else math.nan,
            "cpu_seconds_median_by_atoms": {str(k): float(np.median(v))
                                            for k, v in sorted(secs.items())},
            "cpu_rows_by_atoms": {str(k): len(v) for k, v in sorted(secs.items())}}


def card_figures(table: Path, quarantine: Path, cfg: PlausibilityConfig) -> dict:
    """All measured figures of the data card (see the module docstring); the SCF comparison
    (``scf-check.json`` beside the table, written by ``python -m ecdflow.data.scf_check``)
    is copied in when present."""
    labels = sorted((table.parent / "labels").glob("sevennet-*.jsonl"))
    scf = table.parent / "scf-check.json"
    out = {"gate": gate_metrics(table, quarantine, cfg),
           "procrystal": procrystal_limits(table), "labels": label_checks(),
           "labelling": labelling_stats(labels)}
    if scf.is_file():
        out["scf"] = json.loads(scf.read_text())
    return out


def _f(v: float, nd: int = 1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def figures_block(fig: dict) -> str:
    """Markdown of ``card_figures`` output, between the figures markers."""
    g, p, lab = fig["gate"], fig["procrystal"], fig["labels"]
    lines = [START, "", "**Labeller vs WIEN2k (PBE) bulk moduli and vs experiment (pymatgen "
             "`Element.bulk_modulus`, `Element.rigidity_modulus`), 11 fcc metals of "
             "`ase.collections.dcdft`** (labels in `labels/dcdft-check.jsonl`):", "",
             "| element | K SevenNet | K WIEN2k | K exp. | G SevenNet | G exp. | G error |",
             "|---|---|---|---|---|---|---|"]
    for r in lab["per_element"]:
        lines.append(f"| {r['element']} | {_f(r['K'])} | {_f(r['K_wien2k'])} | "
                     f"{_f(r['K_exp'])} | {_f(r['G'])} | {_f(r['G_exp'])} | "
                     f"{r['G_rel_err_pct']:+.0f}% |")
    kw, ge, ke = lab["K_vs_wien2k"], lab["G_vs_experiment_pct"], lab["K_vs_experiment_pct"]
    lines += [
        "",
        f"K vs WIEN2k: MAE {_f(kw['mae_GPa'])} GPa, RMSE {_f(kw['rmse_GPa'])} GPa, mean "
        f"signed error {kw['mean_signed_GPa']:+.1f} GPa (n = {kw['n']}). K vs experiment: mean "
        f"{ke['mean']:+.0f}%, mean absolute {ke['mean_abs']:.0f}% (n = {ke['n']}). "
        f"**G vs experiment: mean {ge['mean']:+.0f}%, mean absolute {ge['mean_abs']:.0f}%, "
        f"from {ge['min']:+.0f}% to {ge['max']:+.0f}% (n = {ge['n']})**: the labels "
        "underestimate shear moduli of these metals.",
        "",
        f"**RF+Magpie baseline with and without marginal rows** ({g['protocol']}); "
        f"{g['n_marginal']} rows of the table are marginal (C' or C44 below the "
        "`plausibility.marginal_GPa` threshold):",
        "",
        "| rows | n | K R2 | K RMSE (GPa) | G R2 | G RMSE (GPa) |",
        "|---|---|---|---|---|---|",
    ]
    names = {"before_gate": "before the plausibility gate (K, G < 600 GPa)",
             "gated": "the table (gated)", "gated_without_marginal": "gated, marginal rows "
             "removed"}
    for key, name in names.items():
        k, s = g[key]["K_VRH"], g[key]["G_VRH"]
        lines.append(f"| {name} | {k['n']} | {k['r2']:.3f} | {_f(k['rmse_GPa'])} | "
                     f"{s['r2']:.3f} | {_f(s['rmse_GPa'])} |")
    pairs = p["pairs"]
    lines += ["", f"**What the procrystal cannot tell apart** ({p['grid']}^3 conventional "
              "cubes, density x a^3 so cubes of different edge compare point by point, "
              "cation at the origin):", "",
              "| ECD pair | correlation | relative L1 |", "|---|---|---|"]
    for name, v in pairs.items():
        lines.append(f"| {name} | {v['correlation']:.4f} | {v['rel_L1']:.3f} |")
    for name, v in p["noble_metals"]["pairs"].items():
        lines.append(f"| fcc {name} | {v['correlation']:.4f} | {v['rel_L1']:.3f} |")
    lines += ["", "| chloride | a (Å) | cation valence e- | density at the cation site "
              "(e/Å^3) |", "|---|---|---|---|"]
    for name, v in p["cation_site"].items():
        lines.append(f"| {name} | {v['a_A']:.3f} | {v['cation_valence_e']:.0f} | "
                     f"{v['rho_cation_e_A3']:.4f} |")
    val = p["noble_metals"]["valence"]
    lines += ["", "Valence electrons, procrystal vs VASP PBE PAW: " + ", ".join(
        f"{m} {v['procrystal']:.0f} vs {v['vasp_paw']}" for m, v in val.items()) + "."]
    if "scf" in fig:
        c = fig["scf"]
        st = c["settings"]
        lines += ["", f"**Procrystal vs self-consistent valence density, NaCl** (pyscf "
                  f"{st['xc']}, pseudopotentials "
                  f"{', '.join(f'{el} {pp}' for el, pp in st['pseudo'].items())}, "
                  f"{st['basis']}, {'x'.join(map(str, st['kmesh']))} k-points, a = "
                  f"{c['a_A']:.3f} Å, {st['grid']}^3 cube; `python -m ecdflow.data.scf_check`): "
                  f"correlation {c['correlation']:.4f}, relative L1 {c['rel_L1']:.3f}; "
                  f"electrons in the cube {c['electrons_scf']:.2f} (SCF) vs "
                  f"{c['electrons_procrystal']:.2f} (procrystal); peak density "
                  f"{c['rho_max_scf']:.3f} vs {c['rho_max_procrystal']:.3f} e/Å^3."]
    if "labelling" in fig:
        lab_s = fig["labelling"]
        med = lab_s["cpu_seconds_median_by_atoms"]
        lines += ["", f"**Labelling**: 99% of the {lab_s['ok_rows']} Born-stable labelled "
                  f"rows relaxed in <= {lab_s['relax_steps_p99']:.0f} BFGS steps; median CPU "
                  "time per material by atoms in the primitive cell: " + ", ".join(
                      f"{k} atoms {v:.1f} s" for k, v in med.items()) + "."]
    lines += ["", END]
    return "\n".join(lines)


def rounded(o):
    """``o`` with every float rounded to 6 significant digits (what card-figures.json holds
    and what the card's block is rendered from)."""
    if isinstance(o, float):
        return float(f"{o:.6g}")
    if isinstance(o, dict):
        return {k: rounded(v) for k, v in o.items()}
    if isinstance(o, list):
        return [rounded(v) for v in o]
    return o


def write_figures(fig: dict, path: Path) -> Path:
    """Write ``rounded(fig)`` as JSON (sorted keys)."""
    path.write_text(json.dumps(rounded(fig), indent=1, sort_keys=True) + "\n")
    return path
