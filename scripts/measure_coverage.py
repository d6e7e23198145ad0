"""Measure the split-conformal interval (``ecdflow.uncertainty``) of RF+Magpie on the committed
materials table: nested 5-fold CV coverage and width, and LOEO coverage per element.

Run: ``python scripts/measure_coverage.py [--profile paper] [--coverage 0.9] [--out FILE]``
(about 2-5 minutes on 2 cores). The splits are the project's (``ecdflow.splits.make_splits``
with ``splits.n_folds``, ``splits.loeo_elements`` and ``seed`` of params.yaml), the model is
``rf_magpie`` with its default configuration, both scores are measured (``abs``: GPa; ``log``:
decades, the one a log-target model is calibrated with). The numbers in docs/registry.md come
from this script's output file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.config import REPO_ROOT, load_settings
from ecdflow.data.table import load_materials
from ecdflow.features import featurize
from ecdflow.models.rf_magpie import RFMagpieConfig, build
from ecdflow.splits import make_splits
from ecdflow.uncertainty import coverage_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coverage", type=float, default=0.9)
    ap.add_argument("--profile", default="paper", help="params.yaml profile (default: paper)")
    ap.add_argument("--out", default=str(REPO_ROOT / "docs" / "coverage_rf_magpie.md"))
    args = ap.parse_args()
    s = load_settings(profile=args.profile)
    table, _ = load_materials(s.path(s.paths.materials))
    x, errs = featurize(list(table.formula))
    ok = np.array([not e for e in errs])
    table, x = table[ok].reset_index(drop=True), x[ok]
    index = pd.DataFrame({"material_id": table.material_id.astype(str),
                          "elements": table.elements})
    splits = make_splits(index, s.splits.n_folds, list(s.splits.loeo_elements), s.seed)
    pos = {m: i for i, m in enumerate(index.material_id)}
    frames = []
    for target in ("K_VRH", "G_VRH"):
        y = table[target].to_numpy(float)
        for name, sp in splits.items():
            tr = np.array([pos[m] for m in sp["train"]])
            te = np.array([pos[m] for m in sp["test"]])
            est = build(RFMagpieConfig(), seed=s.seed).fit(np.nan_to_num(x[tr]), y[tr])
            frames.append(pd.DataFrame({
                "model": "rf_magpie", "target": target, "split": name,
                "split_kind": name.split("-")[0], "y_true": y[te],
                "y_pred": est.predict(np.nan_to_num(x[te]))}))
    preds = pd.concat(frames, ignore_index=True)
    tables = []
    for score in ("abs", "log"):
        tables.append(coverage_table(preds, args.coverage, {"rf_magpie": score}))
    cov = pd.concat(tables, ignore_index=True)
    cov["coverage"] = cov.coverage.round(3)
    cov["width_gpa"] = cov.width_gpa.round(1)
    cov["q"] = cov.q.round(4)
    out = Path(args.out)
    lines = [f"# Split-conformal interval of RF+Magpie: measured coverage at nominal "
             f"{args.coverage:.0%}", "",
             f"Made by `python scripts/measure_coverage.py` on {len(table)} materials of "
             f"`{Path(s.paths.materials).name}` (profile {args.profile}, {s.splits.n_folds}-fold "
             f"CV, seed {s.seed}, RF+Magpie default configuration). "
             "`cv`: nested (calibrated on the other folds, evaluated on the held-out one, "
             "pooled); `loeo-<El>`: calibrated on all CV residuals, evaluated on the held-out "
             "element's materials; `loeo`: those pooled. Width: mean interval width, GPa.", "",
             "| target | score | test set | n | coverage | width (GPa) |",
             "|---|---|---|---|---|---|"]
    for r in cov.itertuples():
        lines.append(f"| {r.target} | {r.score} | {r.test_set} | {r.n} | {r.coverage:.3f} | "
                     f"{r.width_gpa:.1f} |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
