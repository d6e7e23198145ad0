"""The served model: an MLflow pyfunc that takes what users have and returns moduli in GPa.

Input: a DataFrame with a column ``input`` holding, per row, CIF text, POSCAR text, a pymatgen
``Structure.as_dict()`` as JSON, or CHGCAR text, and an optional column ``format``
(``cif``, ``poscar``, ``json``, ``chgcar``; empty: detected). The model builds the ECD
(procrystal from the structure, or read from the CHGCAR and resampled to the model grid) and
the Magpie features itself, runs every fold model of the ensemble and returns a DataFrame:

- ``formula``: reduced formula of the parsed structure ("" when unparseable)
- ``prediction``: mean over fold models, GPa
- ``uncertainty``: standard deviation over fold models, GPa (0 for a one-member ensemble)
- ``error``: empty, or why the row was refused (unparseable, not a crystal, lanthanide, ...)

One bad row never breaks the others. The ensemble (not a refit on all data) is registered so
the fold spread gives an uncertainty; see docs/registry.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

MANIFEST = "manifest.json"
FORMATS = ("cif", "poscar", "json", "chgcar")
MAX_Z = 86
"""Elements above Rn are refused (no training data, radioactive)."""


@dataclass(frozen=True)
class Parsed:
    """One parsed input row: the structure and, for CHGCAR input, the density on the model
    grid (e/Å^3); ``error`` is set instead when the row is refused."""

    structure: Any = None
    ecd: np.ndarray | None = None
    error: str = ""


def detect_format(text: str) -> str:
    """Guess the input format of ``text`` (``json``, ``cif``, ``chgcar`` or ``poscar``)."""
    s = text.lstrip()
    if s.startswith("{"):
        return "json"
    if "_cell_length_a" in text or s.lower().startswith("data_"):
        return "cif"
    lines = [ln for ln in text.splitlines()]
    # a CHGCAR is a POSCAR followed by a blank line, a grid line and many numbers
    for i, ln in enumerate(lines[:-1]):
        if i > 6 and not ln.strip():
            grid = lines[i + 1].split()
            if len(grid) == 3 and all(g.isdigit() for g in grid):
                return "chgcar"
    return "poscar"


def _structure_from_text(text: str, fmt: str):
    """Parse a structure from CIF/POSCAR/JSON text (pymatgen ``Structure``)."""
    from pymatgen.core import Structure

    if fmt == "json":
        return Structure.from_dict(json.loads(text))
    return Structure.from_str(text, fmt=fmt)


def _check_structure(structure) -> str:
    """Why a structure cannot be predicted ("" when it can)."""
    from pymatgen.core import Structure

    if not isinstance(structure, Structure) or len(structure) == 0:
        return "not a crystal structure"
    if not structure.is_ordered:
        return "disordered structure (partial occupancies) not supported"
    for el in structure.composition.elements:
        sym = getattr(el, "symbol", str(el))
        if getattr(el, "is_lanthanoid", False) or getattr(el, "is_actinoid", False):
            return (f"unsupported element {sym} "
                    "(lanthanides/actinides are excluded, as in the paper)")
        if getattr(el, "Z", 0) > MAX_Z or getattr(el, "Z", 0) < 1:
            return f"unsupported element {sym}"
    if structure.volume <= 0 or structure.density > 30:
        return "not a physical crystal (volume/density)"
    try:
        from ecdflow.density import conventional_cell

        conventional_cell(structure)
    except Exception as exc:  # noqa: BLE001 - InputError or a symmetry failure
        return f"not a Fm-3m crystal (the models cover Fm-3m only): {str(exc)[:160]}"
    return ""


def _chgcar_row(text: str, grid: int, needs_ecd: bool) -> tuple[Any, np.ndarray | None]:
    """Structure and (when ``needs_ecd``) the model-grid density (e/Å^3) from CHGCAR text."""
    from ecdflow.chgcar import read_chgcar, to_model_grid

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "CHGCAR"
        path.write_text(text)
        structure, rho = read_chgcar(path)
    if not needs_ecd:
        return structure, None
    return structure, np.asarray(to_model_grid(structure, rho, grid), dtype=np.float32)


def parse_input(text: Any, fmt: str | None, grid: int, needs_ecd: bool) -> Parsed:
    """Parse one input row; never raises (errors go to ``Parsed.error``).

    Args:
        text: CIF/POSCAR/CHGCAR text or a pymatgen structure dict as JSON.
        fmt: one of ``FORMATS`` or empty/None to detect.
        grid: model grid (points per cube edge) for CHGCAR resampling.
        needs_ecd: whether the model reads the density (CHGCAR is then read and resampled).
    """
    if not isinstance(text, str) or not text.strip():
        return Parsed(error="empty input")
    fmt = (fmt or "").strip().lower() or detect_format(text)
    if fmt not in FORMATS:
        return Parsed(error=f"unknown format '{fmt}' (use one of {', '.join(FORMATS)})")
    try:
        if fmt == "chgcar":
            structure, ecd = _chgcar_row(text, grid, needs_ecd)
        else:
            structure, ecd = _structure_from_text(text, fmt), None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a per-row user error
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return Parsed(error=f"cannot parse input as {fmt}: {msg}")
    reason = _check_structure(structure)
    return Parsed(error=reason) if reason else Parsed(structure=structure, ecd=ecd)


def _procrystal(structure, grid: int, smearing_A: float) -> np.ndarray:
    from ecdflow.density import procrystal_density

    return np.asarray(procrystal_density(structure, grid=grid, smearing_A=smearing_A), np.float32)


def _magpie_rows(formulas: list[str]) -> list[np.ndarray | str]:
    """Magpie features per formula, or an error string for a formula that fails."""
    from ecdflow.features import magpie_features

    try:
        return list(np.asarray(magpie_features(formulas), dtype=np.float32))
    except Exception:  # noqa: BLE001 - retry one by one to isolate the bad row
        out: list[np.ndarray | str] = []
        for f in formulas:
            try:
                out.append(np.asarray(magpie_features([f]), dtype=np.float32)[0])
            except Exception as exc:  # noqa: BLE001
                out.append(f"cannot build Magpie features for {f}: {str(exc)[:120]}")
        return out


def build_inputs(parsed: list[Parsed], inputs: list[str], grid: int,
                 smearing_A: float) -> tuple[dict[str, np.ndarray], list[str]]:
    """Model inputs for the good rows and an error per row (featurisation may still fail).

    Returns ``({"ecd": (n,N,N,N,1) e/Å^3, "magpie": (n,132)}, errors)``; ``n`` counts the rows
    whose error is empty, in order.
    """
    from ecdflow.schema import MAGPIE_LEN

    errors = [p.error for p in parsed]
    ecd: dict[int, np.ndarray] = {}
    mag: dict[int, np.ndarray] = {}
    if "ecd" in inputs:
        for i, p in enumerate(parsed):
            if errors[i]:
                continue
            try:
                ecd[i] = p.ecd if p.ecd is not None else _procrystal(p.structure, grid, smearing_A)
            except Exception as exc:  # noqa: BLE001 - per-row error
                errors[i] = f"cannot build the charge density: {str(exc).splitlines()[0][:160]}"
    if "magpie" in inputs:
        idx = [i for i, e in enumerate(errors) if not e]
        rows = _magpie_rows([parsed[i].structure.composition.reduced_formula for i in idx])
        for i, r in zip(idx, rows, strict=True):
            if isinstance(r, str):
                errors[i] = r
            else:
                mag[i] = r
    good = [i for i, e in enumerate(errors) if not e]
    out: dict[str, np.ndarray] = {}
    if "ecd" in inputs:
        out["ecd"] = (np.stack([ecd[i] for i in good])[..., None].astype(np.float32) if good
                      else np.zeros((0, grid, grid, grid, 1), np.float32))
    if "magpie" in inputs:
        out["magpie"] = (np.stack([mag[i] for i in good]) if good
                         else np.zeros((0, MAGPIE_LEN), np.float32))
    return out, errors


class ModulusEnsemble(mlflow.pyfunc.PythonModel):
    """Fold-model ensemble predicting one modulus (GPa) from structures or CHGCARs.

    Artifacts: ``manifest`` (JSON: target, model_type, inputs, grid, smearing_A, log_target,
    members) and one artifact per member (``member_<i>``: a ``.keras`` file or a joblib file
    of a scikit-learn estimator on the (n, 132) Magpie matrix).
    """

    def load_context(self, context) -> None:
        """Read the manifest and load every fold model."""
        self.manifest = json.loads(Path(context.artifacts["manifest"]).read_text())
        self.members = [load_member(context.artifacts[k]) for k in self.manifest["members"]]

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        """Predict the modulus (GPa) with an uncertainty, one row per input row."""
        return predict_frame(self.members, self.manifest, model_input)


def load_member(path: str):
    """Load one fold model: Keras (``.keras``) or scikit-learn (joblib)."""
    if str(path).endswith(".keras"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import ecdflow.models  # noqa: F401  (registers custom Keras objects, if any)
        except ImportError:
            pass
        import keras

        return keras.saving.load_model(path, compile=False)
    import joblib

    return joblib.load(path)


def member_predict(member, x: dict[str, np.ndarray]) -> np.ndarray:
    """One fold model's predictions (training-target space), shape (n,)."""
    if hasattr(member, "inputs") and not hasattr(member, "get_params"):  # Keras, not sklearn
        names = [getattr(t, "name", "").split(":")[0] for t in member.inputs]
        feed = {k: v for k, v in x.items() if k in names} or x
        n = len(next(iter(feed.values())))
        return np.asarray(member.predict(feed, verbose=0, batch_size=min(32, max(n, 1)))
                          ).reshape(-1)
    return np.asarray(member.predict(x["magpie"])).reshape(-1)


def predict_frame(members: list, manifest: dict, model_input: pd.DataFrame) -> pd.DataFrame:
    """Run the ensemble on a user DataFrame (``input``, optional ``format``); see module doc."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if "input" not in model_input.columns:
        raise ValueError("the input DataFrame needs a column 'input' (CIF/POSCAR/JSON/CHGCAR)")
    fmts = model_input["format"] if "format" in model_input.columns else [None] * len(model_input)
    inputs = list(manifest["inputs"])
    grid = int(manifest["grid"])
    parsed = [parse_input(t, f if isinstance(f, str) else None, grid, "ecd" in inputs)
              for t, f in zip(model_input["input"], fmts, strict=True)]
    x, errors = build_inputs(parsed, inputs, grid, float(manifest.get("smearing_A", 0.1)))
    good = [i for i, e in enumerate(errors) if not e]
    pred = np.full(len(errors), np.nan)
    unc = np.full(len(errors), np.nan)
    if good:
        ys = np.stack([member_predict(m, x) for m in members])  # (members, n_good)
        if manifest.get("log_target"):
            ys = np.power(10.0, ys)
        pred[good] = ys.mean(axis=0)
        unc[good] = ys.std(axis=0) if len(members) > 1 else 0.0
    formulas = [p.structure.composition.reduced_formula if p.structure is not None else ""
                for p in parsed]
    return pd.DataFrame({"formula": formulas, "prediction": pred, "uncertainty": unc,
                         "error": errors})


def signature():
    """The pyfunc's MLflow signature (input text + optional format -> prediction, GPa)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "input"), ColSpec("string", "format", required=False)]),
        outputs=Schema([ColSpec("string", "formula"), ColSpec("double", "prediction"),
                        ColSpec("double", "uncertainty"), ColSpec("string", "error")]),
    )
