"""The served model: an MLflow pyfunc that takes what users have and returns moduli in GPa.

Input: a DataFrame with a column ``input`` holding, per row, CIF text, POSCAR/CONTCAR text, a
pymatgen ``Structure.as_dict()`` as JSON, CHGCAR text or a chemical formula, an optional column
``format`` (a hint only: ``cif``, ``poscar``, ``json``, ``chgcar``, ``formula``; the content
decides, see docs/inputs.md) and an optional column ``source`` (the name used in error
messages; default ``row <i>``, 0-based). Parsing is the project's input layer
(``ecdflow.io``), the same as ``ecdflow predict`` and ``ecdflow preprocess``. The model builds
the ECD (procrystal from the structure, or the CHGCAR's density resampled to the model grid;
a formula has no structure, so density models refuse it) and the Magpie features
(``ecdflow.features.featurize``: rows with non-finite features are refused naming the element),
runs every fold model of the ensemble and returns a DataFrame:

- ``formula``: reduced formula ("" when unparseable)
- ``prediction``: mean over fold models, GPa; ``None`` (JSON ``null``) when refused
- ``uncertainty``: standard deviation over fold models, GPa (0 for a one-member ensemble;
  ``None`` when refused); the spread of fold models, *not* an interval
- ``lower``, ``upper``: the prediction interval, GPa, at the nominal ``coverage`` (0-1, e.g.
  0.9): split-conformal on the fold models' CV test-fold residuals (``ecdflow.uncertainty``)
- ``out_of_domain``: True when an element was never seen in training, the input is far from
  the training set in Magpie space, or its density source differs from the training density
  (only with ``allow_density_source_mismatch``); ``ood_reason`` says which ("" when in domain)
- ``error``: empty, or one line ``<source>: <reason>`` saying why the row was refused

The interval/domain columns are ``None`` (JSON ``null``) when a row is refused or the version
was registered without calibration. Density models refuse an input whose density source
(CHGCAR vs procrystal) differs from their training density, unless the param
``allow_density_source_mismatch`` is true (then flagged ``out_of_domain``); docs/inputs.md.
One bad row never breaks the others; see docs/registry.md.

Parsing and the model inputs live in ``ecdflow.serve_input``, the fold models and their one
traced call in ``ecdflow.ensemble``; this module holds the pyfunc class, the interval/domain
columns and the wire format (``signature``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ecdflow.ensemble import ensemble_predict, load_member
from ecdflow.schema import ECD_DTYPE_PARAM, INPUT_ECD
from ecdflow.serve_input import build_inputs, density_mismatch, parse_input

MANIFEST = "manifest.json"


class ModulusEnsemble(mlflow.pyfunc.PythonModel):
    """Fold-model ensemble predicting one modulus (GPa) from structures or CHGCARs.

    Artifacts: ``manifest`` (JSON: target, model_type, inputs, grid, smearing_A, log_target,
    tta (test-time averaging set, ``ecdflow.symmetry``; absent: none), ecd_dtype (the
    training records' density dtype: served densities are rounded to it,
    ``ecdflow.records.as_stored``; absent: none), members) and one artifact per member
    (``member_<i>``: a ``.keras`` file, or a joblib or ``.skops`` file of a scikit-learn
    estimator on the tabular inputs, (n, 132) Magpie or (n, 133) Magpie + volume per atom,
    + the density invariants for ``ecd``); ``calibration`` and ``domain`` (``ecdflow.uncertainty``)
    for the interval and the out-of-domain flag.
    """

    def load_context(self, context) -> None:
        """Read the manifest and load every fold model, the interval calibration and the
        domain (both absent in versions registered before them: columns then null)."""
        self.manifest = json.loads(Path(context.artifacts["manifest"]).read_text())
        self.members = [load_member(context.artifacts[k]) for k in self.manifest["members"]]
        self.calibration, self.domain = load_uncertainty(self.manifest, context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        """Predict the modulus (GPa) with an interval, one row per input row; ``params``:
        ``allow_density_source_mismatch`` (bool, default False)."""
        return predict_frame(self.members, self.manifest, model_input, params=params,
                             calibration=getattr(self, "calibration", None),
                             domain=getattr(self, "domain", None))


def load_uncertainty(manifest: dict, artifacts: dict) -> tuple[dict | None, Any]:
    """(calibration dict, ``ecdflow.uncertainty.Domain``) of a registered version, each None
    when the version has none."""
    from ecdflow.uncertainty import Domain

    cal = manifest.get("calibration")
    dom = manifest.get("domain")
    calibration = (json.loads(Path(artifacts[cal]).read_text())
                   if cal and cal in artifacts else None)
    domain = Domain.load(artifacts[dom]) if dom and dom in artifacts else None
    return calibration, domain


def uncertainty_columns(pred: list, calibration: dict | None, domain, magpie: np.ndarray | None,
                        compositions: list, flags: list[str]) -> dict[str, pd.Series]:
    """The interval and domain columns of the output frame (None where a row has no
    prediction or the version has no calibration/domain).

    Args:
        pred: predictions (GPa) or None, one per row.
        calibration: ``calibration.json`` of the version (coverage, score, q).
        domain: its ``ecdflow.uncertainty.Domain``.
        magpie: (n_predicted, 132) Magpie rows of the predicted rows, in order, or None
            (then featurised here).
        compositions: pymatgen compositions, one per row.
        flags: extra out-of-domain reasons per row (e.g. a density-source mismatch).

    Returns:
        lower, upper (GPa), coverage (nominal, 0-1), out_of_domain (bool), ood_reason.
        ``lower`` is clipped at 0 GPa: a modulus of a mechanically stable crystal is positive
        (Born criteria), so the clip never drops the true value out of the interval and the
        coverage guarantee holds; the unclipped ``prediction - q`` would be a negative modulus.
    """
    from ecdflow.uncertainty import interval

    n = len(pred)
    lower: list = [None] * n
    upper: list = [None] * n
    cov: list = [None] * n
    ood: list = [None] * n
    why: list = [""] * n
    idx = [i for i, v in enumerate(pred) if v is not None]
    if idx and calibration is not None:
        lo, hi = interval(np.array([pred[i] for i in idx]), float(calibration["q"]),
                          calibration.get("score", "abs"))
        for k, i in enumerate(idx):
            if np.isfinite(lo[k]) and np.isfinite(hi[k]):
                lower[i], upper[i] = max(float(lo[k]), 0.0), float(hi[k])
            cov[i] = float(calibration["coverage"])
    reasons = [""] * len(idx)
    if idx and domain is not None:
        if magpie is None:
            from ecdflow.features import featurize

            magpie, _ = featurize([compositions[i].element_composition.formula for i in idx])
        reasons = domain.check(magpie, [[el.symbol for el in compositions[i].elements]
                                        for i in idx])
    for k, i in enumerate(idx):
        text = "; ".join(t for t in (reasons[k], flags[i]) if t)
        if domain is not None or flags[i]:
            ood[i], why[i] = bool(text), text
    obj = {"dtype": object}
    return {"lower": pd.Series(lower, **obj), "upper": pd.Series(upper, **obj),
            "coverage": pd.Series(cov, **obj), "out_of_domain": pd.Series(ood, **obj),
            "ood_reason": why}


def _column(model_input: pd.DataFrame, name: str) -> list:
    if name not in model_input.columns:
        return [None] * len(model_input)
    return [v if isinstance(v, str) and v.strip() else None for v in model_input[name]]


def predict_frame(members: list, manifest: dict, model_input: pd.DataFrame,
                  params: dict | None = None, calibration: dict | None = None,
                  domain=None) -> pd.DataFrame:
    """Run the ensemble on a user DataFrame (``input``, optional ``format``, ``source``); see
    the module doc. Missing predictions are ``None`` (JSON ``null``), never NaN.

    ``params``: ``allow_density_source_mismatch`` (see :func:`density_mismatch`);
    ``calibration``/``domain``: see :func:`uncertainty_columns`."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if "input" not in model_input.columns:
        raise ValueError("the input DataFrame needs a column 'input' "
                         "(CIF/POSCAR/JSON/CHGCAR text or a formula)")
    fmts = _column(model_input, "format")
    where = [s or f"row {i}" for i, s in enumerate(_column(model_input, "source"))]
    inputs = list(manifest["inputs"])
    grid = int(manifest["grid"])
    parsed = [parse_input(t, f, grid, "ecd" in inputs, w)
              for t, f, w in zip(model_input["input"], fmts, where, strict=True)]
    parsed, flags = density_mismatch(
        parsed, manifest, where, bool((params or {}).get("allow_density_source_mismatch")))
    x, errors = build_inputs(parsed, inputs, grid, float(manifest.get("smearing_A", 0.1)), where)
    if manifest.get(ECD_DTYPE_PARAM) and INPUT_ECD in x:  # the density the members were fitted on
        from ecdflow.records import as_stored

        x["ecd"] = as_stored(x["ecd"], manifest[ECD_DTYPE_PARAM])
    good = [i for i, e in enumerate(errors) if not e]
    pred: list[float | None] = [None] * len(errors)
    unc: list[float | None] = [None] * len(errors)
    if good:
        from ecdflow.symmetry import tta_predict  # averaged over the manifest's "tta" set

        tta = manifest.get("tta", "none") if "ecd" in inputs else "none"
        # every member in one traced call per operation; (members, n_good) back from the ravel
        ys = tta_predict(lambda f: ensemble_predict(members, f).reshape(-1), x,
                         tta).reshape(len(members), -1)
        if manifest.get("log_target"):
            ys = np.power(10.0, ys)
        mean = ys.mean(axis=0)
        std = ys.std(axis=0) if len(members) > 1 else np.zeros(len(good))
        for k, i in enumerate(good):
            if np.isfinite(mean[k]) and np.isfinite(std[k]):
                pred[i], unc[i] = float(mean[k]), float(std[k])
            else:
                errors[i] = f"{where[i]}: the model returned a non-finite value"
    formulas = [p.composition.reduced_formula if p.composition is not None else ""
                for p in parsed]
    uq = uncertainty_columns(pred, calibration, domain, x.get("magpie") if all(
        pred[i] is not None for i in good) else None, [p.composition for p in parsed], flags)
    return pd.DataFrame({"formula": formulas, "prediction": pd.Series(pred, dtype=object),
                         "uncertainty": pd.Series(unc, dtype=object), **uq, "error": errors})


def signature():
    """The pyfunc's MLflow signature (input text + optional format hint and source name ->
    prediction, GPa)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "input"), ColSpec("string", "format", required=False),
                       ColSpec("string", "source", required=False)]),
        outputs=Schema([ColSpec("string", "formula"), ColSpec("double", "prediction"),
                        ColSpec("double", "uncertainty"), ColSpec("double", "lower"),
                        ColSpec("double", "upper"), ColSpec("double", "coverage"),
                        ColSpec("boolean", "out_of_domain"), ColSpec("string", "ood_reason"),
                        ColSpec("string", "error")]),
        params=ParamSchema([ParamSpec("allow_density_source_mismatch", "boolean", False)]),
    )
