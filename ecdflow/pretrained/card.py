"""The model card (MODEL_CARD.md) of a shipped model, rendered from its ``card.json`` facts."""

from __future__ import annotations


def _row(label: str, s: dict) -> str:
    return (f"| {label} | {s['r2_mean']:.3f} ± {s['r2_std']:.3f} | "
            f"{s['rmse_mean']:.1f} ± {s['rmse_std']:.1f} | {s['mae_mean']:.1f} ± "
            f"{s['mae_std']:.1f} | {s['pooled_r2']:.3f} | {s['pooled_rmse']:.1f} |")


def _interval_lines(card: dict) -> list[str]:
    """The interval and domain section (absent facts: cards built before them)."""
    iv, dom, u = card.get("interval"), card.get("domain"), card["unit"]
    if not iv:
        return []
    p = f"{100 * iv['nominal']:.0f}%"
    lines = [
        "## Prediction interval and domain", "",
        f"Every prediction carries a {p} split-conformal interval (`lower`, `upper`, "
        f"`coverage`): prediction ± q with q = {iv['q_gpa']:.1f} {u}, the "
        f"ceil((n+1)·{iv['nominal']:g})-th smallest absolute out-of-fold residual of the "
        f"n = {iv['n_calibration']} CV materials (`ecdflow.uncertainty`; artifacts "
        "`calibration.json`, `domain.npz` written by the registry's own code, "
        "`oof_predictions.json` the residuals' source).", "",
        "| test set | n | coverage (nominal " + p + ") | mean width | RMSE |",
        "|---|---|---|---|---|",
        f"| CV, nested over folds | {iv['cv_n']} | {iv['cv_coverage']:.3f} | "
        f"{iv['cv_width_gpa']:.1f} {u} | {card['cv']['pooled_rmse']:.1f} {u} |",
    ]
    if "loeo_coverage" in iv:
        lines.append(f"| leave-one-element-out, pooled ({', '.join(iv['per_loeo'])}) | "
                     f"{iv['loeo_n']} | {iv['loeo_coverage']:.3f} | {iv['loeo_width_gpa']:.1f}"
                     f" {u} | {iv['loeo_rmse_gpa']:.1f} {u} |")
        lines += [f"| LOEO {el} | {v['n']} | {v['coverage']:.3f} | | {v['rmse_gpa']:.1f} {u} |"
                  for el, v in iv["per_loeo"].items()]
    lines += ["", "Nested CV: each fold's coverage uses a q calibrated on the other four folds' "
              "residuals only; LOEO: the forest refitted without the element, q from all CV "
              "residuals. A held-out element breaks exchangeability, so LOEO coverage can fall "
              "below nominal.", ""]
    if dom:
        lines += [f"`out_of_domain` is true when an input holds an element absent from the "
                  f"{dom['n_train']} training materials ({dom['n_elements']} elements), or its "
                  "nearest-neighbour distance in standardised Magpie space exceeds "
                  f"{dom['threshold']:.2f} (the {dom['percentile']:g}th percentile of the "
                  "training leave-one-out distances); `ood_reason` says which.", ""]
    return lines


def render_card(card: dict) -> str:
    """Markdown model card: data version, protocol, CV metrics (mean ± std over folds and
    pooled, GPa), size, intended use, known limits and how it was made."""
    cv, d = card["cv"], card["data"]
    size = card.get("size_bytes")
    kind = "bulk" if card["target"] == "K_VRH" else "shear"
    size_line = f"{size / 1e6:.2f} MB" if size else "(measured after saving)"
    lines = [
        f"# Model card: `{card['name']}`", "",
        f"Predicts **{card['target']}** (Voigt-Reuss-Hill {kind}"
        f" modulus, {card['unit']}) of Fm-3m crystals from **Magpie composition features + "
        "volume per atom** (Å^3/atom, cell volume / number of sites) with a random forest. "
        "It does not read the charge density: it is issue 15's baseline, shipped because the "
        "standard-profile run that will pick the best model per target has not run yet.", "",
        "## Model", "",
        f"- type: `{card['model_type']}` (ecdflow/models/rf_magpie_volume.py), inputs "
        f"{card['inputs']}, hyper-parameters `{card['params']}`, seed {card['seed']}",
        f"- served as the fold ensemble of {card['n_members']} models (one per CV fold, no refit"
        " on all data): the prediction is their mean, `uncertainty` their standard deviation "
        "(a spread; the calibrated interval is below)",
        "- format: MLflow model (pyfunc `ecdflow.serve.ModulusEnsemble`), members in skops "
        "format (trusted type `sklearn.tree._tree.Tree`)",
        f"- size on disk: {size_line} (whole model directory)",
        "",
        "## Data", "",
        f"- table `{d['table']}` ({d['rows']} rows, {d['rows_with_target']} with "
        f"{card['target']}), md5 `{d['table_md5']}`, sha256 `{d['table_sha256']}`",
        f"- data version tag: `{card['data_version']}`; label std {card['label_std']:.1f} "
        f"{card['unit']}",
        "- labels: SevenNet `7net-l3i5` (machine-learned potential, not DFT); see "
        "data/fcc/DATA_CARD.md", "",
        "## Protocol and cross-validated metrics", "",
        f"{card['protocol']}; each fold's model fitted on the other folds. Metrics in "
        f"{card['unit']}: mean ± std over the {cv['n_folds']} folds, and pooled over all "
        "out-of-fold predictions.", "",
        "| model | R2 | RMSE | MAE | pooled R2 | pooled RMSE |", "|---|---|---|---|---|---|",
        _row(f"**{card['model_type']}** (this model)", cv),
        *[_row(f"{k} (same folds, default parameters)", v) for k, v in card["compare"].items()],
        "", "Per fold (this model):", "", "| fold | n test | RMSE | MAE | R2 |",
        "|---|---|---|---|---|",
        *[f"| {f['fold']} | {f['n_test']} | {f['rmse']:.1f} | {f['mae']:.1f} | {f['r2']:.3f} |"
          for f in cv["per_fold"]],
        "", *_interval_lines(card),
        "## Intended use", "",
        "- Fm-3m (rocksalt, fluorite, Heusler, fcc elements, ...) crystals with elements up to "
        "Rn, excluding lanthanides and actinides; a quick estimate and the baseline a density "
        "model must beat.",
        "- Input: a structure (CIF, POSCAR, pymatgen JSON) or a CHGCAR; a formula alone is "
        "refused (no volume).", "",
        "## Known limits", "",
        "- Labels are from a machine-learned potential on generated structures, not DFT or "
        "experiment; errors against experiment are larger than the CV numbers.",
        "- Random-split CV: chemically close materials sit in train and test; leave-one-"
        "element-out errors are larger and the interval covers less there (table above).",
        "- A forest cannot extrapolate beyond the label range of the table; other space groups"
        " are refused by the served model.",
        "- The structure is used only through its volume per atom; the charge density is "
        "not read.", "",
        "## How it was made", "",
        f"`ecdflow pretrained build` (ecdflow/pretrained/build.py) at git commit "
        f"`{card['git_commit']}`, seeded: rerunning it reproduces the members' predictions and"
        " this card; MLmodel's creation time and uuid and the skops files' bytes differ.", "",
    ]
    return "\n".join(lines)
