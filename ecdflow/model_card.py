"""The model card of a registered version: its MLflow description (Markdown), written by
``ecdflow.registry.register_best`` from the version's tags: what it predicts from which
inputs, data version, protocol, CV metrics beside the RF+Magpie baseline, the measured
coverage of its interval, intended use and limits. All errors in GPa.
"""

from __future__ import annotations

from typing import Any

from ecdflow import tracking
from ecdflow.schema import (
    INPUT_ECD,
    INPUT_MAGPIE,
    INPUT_VOLUME,
    INPUTS,
    TARGET_LABELS,
    TARGET_UNIT,
)


def coverage_line(tags: dict[str, str]) -> str:
    """The model card's interval line from the version tags ``ecdflow.coverage_<p>`` etc.
    (``ecdflow.uncertainty.coverage_metrics``): measured CV (nested) and pooled LOEO coverage
    of the split-conformal interval and its mean width; 'not measured' when absent."""
    cov = sorted(k for k in tags if k.startswith("ecdflow.coverage_"))
    if not cov:
        return "- Interval: not measured (no CV test predictions to calibrate on)."
    p = cov[0].rsplit("_", 1)[-1]

    def g(key: str) -> str:
        v = tags.get(f"ecdflow.{key}_{p}")
        return "n/a" if v in (None, "", "nan") else f"{float(v):.3f}" if "coverage" in key \
            else f"{float(v):.1f} {TARGET_UNIT}"

    return (f"- Interval: split-conformal at nominal {p}%; measured coverage {g('coverage')} "
            f"under CV (nested, mean width {g('interval_width')}), {g('loeo_coverage')} pooled "
            f"over the held-out elements (width {g('loeo_interval_width')}); LOEO coverage "
            "is lower where an element was never seen (flagged `out_of_domain`).")


def model_card(target: str, model: str, tags: dict[str, str], folds: list[str], n_members: int,
               grid: int, cv: Any, baseline: Any | None,
               inputs: list[str] | tuple[str, ...] = INPUTS) -> str:
    """The Markdown description of a registered version (MLflow shows it on the version page):
    what it predicts, data version, protocol, CV metrics beside the RF+Magpie baseline
    (GPa, mean over folds and repeats), interval coverage, intended use and limits.

    ``cv`` / ``baseline``: rows with ``rmse``, ``mae`` (GPa) and ``r2``; ``inputs``: the
    model's inputs (``ecd``, ``magpie``)."""
    def m(row: Any) -> str:  # GPa to 0.1, R2 to 0.001 (the tags keep 6 digits)
        return (f"RMSE {float(row['rmse']):.1f} {TARGET_UNIT}, MAE {float(row['mae']):.1f} "
                f"{TARGET_UNIT}, R2 {float(row['r2']):.3f}")

    label = TARGET_LABELS.get(target, target)
    described = {INPUT_ECD: "its 3D electronic charge density (procrystal ECD, or a VASP CHGCAR "
                            f"resampled, on a {grid}^3 grid)",
                 INPUT_MAGPIE: "the Magpie features of its composition",
                 INPUT_VOLUME: "its volume per atom (Å^3/atom, from the relaxed cell)"}
    lines = [
        f"# {target} ({label}, {TARGET_UNIT}) — {model} fold ensemble", "",
        f"Predicts the Voigt-Reuss-Hill {label} {target} in {TARGET_UNIT} of an Fm-3m crystal "
        f"from {' and '.join(described.get(i, i) for i in inputs)}; the prediction is the "
        "mean of the members, with a calibrated interval and an out-of-domain flag.", "",
        "## Data and protocol", "",
        f"- Data version: `{tags.get(tracking.TAG_DATA_VERSION, '?')}`",
        f"- Pipeline run: `{tags.get(tracking.TAG_PIPELINE_RUN, '?')}`, profile "
        f"`{tags.get(tracking.TAG_PROFILE, '?')}`, commit "
        f"`{tags.get(tracking.TAG_GIT, '?')[:12]}`",
        f"- Members: {n_members} models, one per CV fold x repeat ({', '.join(folds)}); "
        f"ECD grid {grid}^3",
        f"- Chosen as the lowest mean CV {tags.get('ecdflow.gate_metric', 'rmse')} among the "
        "run's model types.", "",
        "## Metrics (held-out CV folds, mean over folds and repeats)", "",
        f"- This model: {m(cv)}",
        f"- RF+Magpie baseline, same run: {m(baseline) if baseline is not None else 'not run'}",
        coverage_line(tags), "",
        "## Intended use", "",
        f"Screening estimates of {target} for Fm-3m (rock-salt, fluorite, Heusler-type and "
        "similar) compounds of the elements seen in training, with the interval and the "
        "out-of-domain flag as warning signs; not a substitute for DFT or experiment.", "",
        "## Limits", "",
        "- Trained on the bundled benchmark: labels from a machine-learned potential (SevenNet), "
        "ECD from a procrystal model (no bonding); not the paper's FCC2170 VASP data.",
        "- Refuses (per row) structures that are not Fm-3m, lanthanides/actinides and Z > 86.",
        "- Elements absent from training are extrapolation: see the leave-one-element-out "
        "table of the pipeline run.",
    ]
    return "\n".join(lines) + "\n"
