"""The promotion gate: may a registered challenger replace the champion? Pure judgement over
the versions' tags (CV metrics in GPa, RF+Magpie baseline, data version, external checks);
``ecdflow.registry`` records the verdict (:func:`ecdflow.registry.bless`) and moves aliases.
"""

from __future__ import annotations

import math

from ecdflow import tracking
from ecdflow.config import Settings
from ecdflow.schema import BASELINE_MODEL
from ecdflow.tracking import TAG_BASELINE, TAG_CV, TAG_EXTERNAL

TAG_GATE = "ecdflow.gate"  # "passed" | "refused": the recorded verdict of the gate
TAG_GATE_REASON = "ecdflow.gate_reason"  # the one-line reason ("" when passed)
TAG_GATE_CHAMPION = "ecdflow.gate_champion"  # champion version judged against ("none")
TAG_GATE_AT = "ecdflow.gate_at"


def tag_float(mv, key: str) -> float:
    """A version tag as a float (NaN when absent or not a number)."""
    try:
        return float(mv.tags.get(key, "nan"))
    except ValueError:
        return math.nan


def external_check(candidate, champion) -> str:
    """Why the candidate's external-validation RMSEs are worse than the champion's ("" if not).

    Compares every ``ecdflow.external.*.rmse_gpa`` tag both versions carry; the candidate must
    carry at least one (``ecdflow evaluate external`` sets them)."""
    keys = [k for k in candidate.tags if k.startswith(TAG_EXTERNAL) and k.endswith("rmse_gpa")]
    if not keys:
        return "no external-validation metrics on the candidate (run `ecdflow evaluate external`)"
    if champion is None:
        return ""
    for k in sorted(keys):
        c, h = tag_float(candidate, k), tag_float(champion, k)
        if not math.isnan(h) and not math.isnan(c) and c > h:
            return (f"external {k.removeprefix(TAG_EXTERNAL)} {c:.3g} GPa is worse than the "
                    f"champion's {h:.3g} GPa")
    return ""


def gate(settings: Settings, candidate, champion) -> str:
    """The promotion gate: "" when ``candidate`` may replace ``champion``, else one-line reason.

    Rules (metric = ``settings.registry.metric``, GPa, lower is better): the candidate must
    (1) be no worse than the RF+Magpie baseline of its own pipeline run (a rf_magpie candidate
    is the baseline), (2) beat the champion trained on the same data version by the relative
    ``margin``: ``cand < champ * (1 - margin)``, and (3) with ``use_external_validation``,
    not be worse than the champion on the external references.
    """
    metric, margin = settings.registry.metric, settings.registry.margin
    key = TAG_CV.format(metric=metric)
    cand = tag_float(candidate, key)
    if math.isnan(cand):
        return f"candidate v{candidate.version} has no CV {metric} tag"
    base = tag_float(candidate, TAG_BASELINE.format(metric=metric))
    if candidate.tags.get(tracking.TAG_MODEL) != BASELINE_MODEL:
        if math.isnan(base):
            return "no RF+Magpie baseline in the candidate's pipeline run"
        if cand > base:
            return (f"candidate v{candidate.version} CV {metric} {cand:.3f} GPa does not beat "
                    f"the RF+Magpie baseline {base:.3f} GPa")
    if champion is not None:
        if champion.version == candidate.version:
            return f"v{candidate.version} is already the champion"
        dv_c = candidate.tags.get(tracking.TAG_DATA_VERSION, "")
        dv_h = champion.tags.get(tracking.TAG_DATA_VERSION, "")
        if dv_c != dv_h:
            return (f"data versions differ (candidate {dv_c or '?'}, champion {dv_h or '?'}): "
                    "metrics are not comparable; use --force with a reason")
        champ = tag_float(champion, key)
        if not math.isnan(champ) and not cand < champ * (1.0 - margin):
            return (f"candidate v{candidate.version} CV {metric} {cand:.3f} GPa does not beat "
                    f"champion v{champion.version} {champ:.3f} GPa by margin {margin:.1%}")
    if settings.registry.use_external_validation:
        return external_check(candidate, champion)
    return ""


def recorded_verdict(candidate, champion) -> str | None:
    """The gate's recorded reason for ``candidate`` ("" = passed), or None when no verdict is
    recorded or it was recorded against another champion (then the gate must run again)."""
    verdict = candidate.tags.get(TAG_GATE)
    judged = candidate.tags.get(TAG_GATE_CHAMPION)
    if verdict not in ("passed", "refused") or judged is None:
        return None
    if judged != (str(champion.version) if champion is not None else "none"):
        return None
    return "" if verdict == "passed" else candidate.tags.get(TAG_GATE_REASON, "refused")
