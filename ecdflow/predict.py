"""Predict K or G (GPa, with the fold-ensemble uncertainty) for structure or CHGCAR files.

The model is a registered ecdflow pyfunc (default ``models:/<name>@champion``); every file
gets one row, and a bad file gets an ``error`` instead of stopping the others.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecdflow import tracking
from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.registry import CHAMPION, resolve_target

MAX_BYTES = 200 * 1024 * 1024
"""Largest input file read (a 60^3-ish CHGCAR is a few MB; big grids reach ~100 MB)."""


def guess_format(path: Path) -> str:
    """Input format from a file name: ``cif``, ``json``, ``chgcar``, ``poscar`` or "" (detect)."""
    name = path.name.lower()
    if name.endswith(".cif"):
        return "cif"
    if name.endswith(".json"):
        return "json"
    if "chgcar" in name or name.startswith(("chg", "aeccar", "parchg")):
        return "chgcar"
    if "poscar" in name or "contcar" in name or name.endswith(".vasp"):
        return "poscar"
    return ""


def read_inputs(paths: list[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The pyfunc input frame (``input``, ``format``) and a read error per file ("" if read)."""
    texts, fmts, errors = [], [], []
    for p in map(Path, paths):
        text, err = "", ""
        try:
            if p.stat().st_size > MAX_BYTES:
                err = f"file larger than {MAX_BYTES // 2**20} MiB"
            else:
                text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            err = f"cannot read file: {type(exc).__name__}: {str(exc)[:120]}"
        texts.append(text)
        fmts.append(guess_format(p))
        errors.append(err)
    return pd.DataFrame({"input": texts, "format": fmts}), errors


def default_model_uri(settings: Settings, target: str) -> str:
    """``models:/<registered name of target>@champion``."""
    return f"models:/{settings.registry.model_names[resolve_target(target)]}@{CHAMPION}"


def load_model(settings: Settings, model_uri: str):
    """Load a registered ecdflow pyfunc; an unknown name/alias is a one-line user error."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.configure(settings)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        msg = str(exc).splitlines()[0][:200]
        raise EcdflowError(f"cannot load model {model_uri}: {msg}") from None


def predict_files(settings: Settings, paths: list[str | Path], target: str,
                  model_uri: str | None = None) -> pd.DataFrame:
    """Predict one modulus for each file.

    Args:
        paths: CIF, POSCAR/CONTCAR/.vasp, pymatgen JSON or CHGCAR files.
        target: bulk/shear/K_VRH/G_VRH.
        model_uri: pyfunc URI (default: the target's champion).

    Returns:
        DataFrame: file, target, formula, prediction_gpa, uncertainty_gpa, error.
    """
    if not paths:
        raise EcdflowError("no input files given")
    t = resolve_target(target)
    uri = model_uri or default_model_uri(settings, t)
    frame, read_errors = read_inputs(paths)
    model = load_model(settings, uri)
    out = model.predict(frame)
    errors = [r or str(e or "") for r, e in zip(read_errors, out["error"], strict=True)]
    return pd.DataFrame({
        "file": [str(p) for p in paths], "target": t, "formula": out["formula"].fillna(""),
        "prediction_gpa": out["prediction"].where([not e for e in errors]),
        "uncertainty_gpa": out["uncertainty"].where([not e for e in errors]), "error": errors,
    })
