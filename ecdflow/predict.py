"""Predict K or G (GPa, with a calibrated interval and an out-of-domain flag) for structure,
CHGCAR or table files.

The model is a registered ecdflow pyfunc: ``--model-uri``, else ``models:/<name>@champion``
when the registry has a champion, else the model shipped with ecdflow (``ecdflow.pretrained``);
the result says which answered. Files are read
by the input layer (``ecdflow.io``: content decides the kind, gzip/bzip2/xz and legacy
encodings accepted); a structure or CHGCAR file gives one row, a table (CSV/TSV/semicolon/JSONL
with a ``formula`` column) one row per table row, named ``<file>:<row> (<material_id>)``.
A bad file or row gets an ``error`` (one line naming it) and no prediction; the others are
still predicted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ecdflow import tracking
from ecdflow.config import Settings
from ecdflow.errors import EcdflowError, InputError
from ecdflow.registry import CHAMPION, resolve_target

COLUMNS = ["file", "target", "formula", "prediction_gpa", "uncertainty_gpa", "lower_gpa",
           "upper_gpa", "coverage", "out_of_domain", "ood_reason", "error"]
UQ_COLUMNS = {"lower_gpa": "lower", "upper_gpa": "upper", "coverage": "coverage",
              "out_of_domain": "out_of_domain"}
"""Interval/domain columns of the output and the served model's column each comes from."""


def _table_inputs(path: Path, text: str) -> list[dict]:
    """One pyfunc input row per table row (formula, or the structure when the row has one)."""
    from ecdflow.data.table import STRUCTURE_KEYS, structure_of
    from ecdflow.io.table import read_table_text

    out = []
    for i, row in enumerate(read_table_text(text, str(path)), start=1):
        mid = row.get("material_id")
        where = f"{path}:{i}" + (f" ({mid})" if mid not in (None, "") else "")
        entry = {"source": where, "format": "formula", "input": "", "error": ""}
        if "_error" in row:
            entry["error"] = f"{where}: {row['_error']}"
        elif all(k in row for k in STRUCTURE_KEYS):
            try:
                entry.update(input=json.dumps(structure_of(row).as_dict()), format="json")
            except Exception as exc:  # noqa: BLE001 - malformed arrays in a user row
                entry["error"] = f"{where}: bad structure ({type(exc).__name__})"
        elif isinstance(row.get("formula"), str) and row["formula"].strip():
            entry["input"] = row["formula"]
        else:
            entry["error"] = f"{where}: missing field: formula"
        out.append(entry)
    return out


def read_inputs(paths: list[str | Path]) -> list[dict]:
    """Pyfunc input rows (``input``, ``format`` hint, ``source``) and a read ``error`` each.

    A table file expands to one entry per row; any other file is one entry. A file that cannot
    be read (missing, corrupt compression, binary, empty) is one entry with its error.
    """
    from ecdflow.io import hint_of, read_text, sniff

    entries: list[dict] = []
    for p in map(Path, paths):
        try:
            text = read_text(p, str(p))
            if sniff(text) == "table":
                entries += _table_inputs(p, text)
                continue
            entries.append({"source": str(p), "format": hint_of(p.name), "input": text,
                            "error": ""})
        except InputError as exc:
            entries.append({"source": str(p), "format": "", "input": "", "error": str(exc)})
    return entries


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


def choose_model(settings: Settings, target: str, model_uri: str | None = None
                 ) -> tuple[object, dict]:
    """The model that answers for ``target`` and who it is.

    ``model_uri`` when given; else the registry's champion when one exists; else the model
    shipped with ecdflow (``ecdflow.pretrained``). Returns (loaded pyfunc, ``answered_by``:
    ``{"model": name, "version": registry version or "shipped" or the URI, "model_type": ...,
    "uri": ...}``).
    """
    import mlflow

    t = resolve_target(target)
    if model_uri:
        info = {"model": model_uri, "version": "", "model_type": "", "uri": model_uri}
        return load_model(settings, model_uri), info
    from mlflow.exceptions import MlflowException

    from ecdflow.pretrained import VERSION_SHIPPED, shipped_for

    name = settings.registry.model_names[t]
    tracking.configure(settings)
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        mv = None
    if mv is not None:
        uri = default_model_uri(settings, t)
        info = {"model": name, "version": str(mv.version),
                "model_type": mv.tags.get(tracking.TAG_MODEL, ""), "uri": uri}
        return load_model(settings, uri), info
    ship = shipped_for(t)
    info = {"model": ship.name, "version": VERSION_SHIPPED, "model_type": ship.model_type,
            "uri": str(ship.path)}
    return load_model(settings, str(ship.path)), info


def answered_by_line(info: dict) -> str:
    """``answered by: <name> v<version> (<model type>)`` / ``... (shipped, <model type>)``."""
    if not info.get("version"):
        return f"answered by: {info['model']}"
    ver = info["version"] if info["version"] == "shipped" else f"v{info['version']} (champion)"
    return f"answered by: {info['model']} {ver}, model type {info['model_type'] or '?'}"


def predict_files(settings: Settings, paths: list[str | Path], target: str,
                  model_uri: str | None = None, model=None,
                  allow_density_source_mismatch: bool = False) -> pd.DataFrame:
    """Predict one modulus for each structure/CHGCAR file and each table row.

    Args:
        paths: CIF, POSCAR/CONTCAR, pymatgen JSON, CHGCAR or table files (any name,
            compressed or not).
        target: bulk/shear/K_VRH/G_VRH.
        model_uri: pyfunc URI (default: the target's champion).
        model: an already loaded pyfunc (then ``model_uri`` is not loaded).
        allow_density_source_mismatch: predict (flagged out of domain) instead of refusing
            inputs whose density source differs from the model's training density.

    Returns:
        DataFrame: file, target, formula, prediction_gpa, uncertainty_gpa (fold spread),
        lower_gpa, upper_gpa (interval at the nominal ``coverage``, 0-1), out_of_domain
        (bool), ood_reason (None where the row failed or the model has no calibration),
        error ("" or one line ``<file or row>: <reason>``); ``attrs["answered_by"]`` names
        the model that answered (:func:`choose_model`).
    """
    if not paths:
        raise EcdflowError("no input files given")
    t = resolve_target(target)
    entries = read_inputs(paths)
    answered_by = {"model": "(given)", "version": "", "model_type": "", "uri": ""}
    if model is None:
        model, answered_by = choose_model(settings, t, model_uri)
    frame = pd.DataFrame({k: [e[k] for e in entries] for k in ("input", "format", "source")})
    ok = [i for i, e in enumerate(entries) if not e["error"]]
    rows = [{"file": e["source"], "target": t, "formula": "", "prediction_gpa": None,
             "uncertainty_gpa": None, **dict.fromkeys(UQ_COLUMNS), "ood_reason": "",
             "error": e["error"]} for e in entries]
    if ok:
        params = {"allow_density_source_mismatch": True} if allow_density_source_mismatch \
            else None
        out = model.predict(frame.iloc[ok].reset_index(drop=True), params=params)
        for k, i in enumerate(ok):
            err = str(out["error"].iloc[k] or "")
            rows[i].update(formula=str(out["formula"].iloc[k] or ""), error=err)
            if not err:
                rows[i].update(prediction_gpa=_num(out["prediction"].iloc[k]),
                               uncertainty_gpa=_num(out["uncertainty"].iloc[k]))
                for col, src in UQ_COLUMNS.items():
                    v = out[src].iloc[k] if src in out.columns else None
                    rows[i][col] = (None if v is None or v != v else bool(v)
                                    if col == "out_of_domain" else _num(v))
                if "ood_reason" in out.columns:
                    rows[i]["ood_reason"] = str(out["ood_reason"].iloc[k] or "")
                if rows[i]["prediction_gpa"] is None:
                    rows[i]["error"] = f"{entries[i]['source']}: no prediction"
    df = pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object)
                       if c.endswith("_gpa") or c in UQ_COLUMNS else [r[c] for r in rows]
                       for c in COLUMNS})
    df.attrs["answered_by"] = answered_by
    return df


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None
