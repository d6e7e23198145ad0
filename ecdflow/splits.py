"""Train/test splits shared by every model and target: seeded k-fold CV and leave-one-element-out.

Splits are made once per data version (the records manifest's ``data_hash``), saved as JSON
under ``<work_dir>/splits/`` and reused, so every model and target sees the same folds.
Names: ``cv-0`` .. ``cv-<k-1>`` and ``loeo-<El>`` (test = every material containing El).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.log import get_logger

log = get_logger(__name__)
Splits = dict[str, dict[str, list[str]]]


def element_sets(index_df: pd.DataFrame) -> dict[str, set[str]]:
    """Material id -> its element symbols: the ``elements`` list where a row has one, else
    the elements of its ``formula`` (composition-only tables carry no ``elements``); a formula
    that does not parse gives an empty set (preprocessing quarantines such rows)."""
    from ecdflow.errors import InputError
    from ecdflow.features import parse_formula

    out: dict[str, set[str]] = {}
    formulas = (index_df["formula"] if "formula" in index_df.columns
                else pd.Series([None] * len(index_df)))
    els_col = (index_df["elements"] if "elements" in index_df.columns
               else pd.Series([None] * len(index_df)))
    for mid, els, formula in zip(index_df["material_id"].astype(str), els_col, formulas,
                                 strict=True):
        if isinstance(els, list | tuple | np.ndarray) and len(els):
            out[mid] = {str(e) for e in els}
            continue
        try:
            out[mid] = {e.symbol for e in parse_formula(str(formula)).elements}
        except InputError:
            out[mid] = set()
    return out


def make_splits(index_df: pd.DataFrame, n_folds: int, loeo_elements: list[str],
                seed: int) -> Splits:
    """CV folds (seeded ``KFold`` over sorted material ids) and LOEO splits for the listed
    elements present in ``index_df`` (columns ``material_id`` and ``elements`` and/or
    ``formula``: see ``element_sets``)."""
    from sklearn.model_selection import KFold

    ids = np.array(sorted(index_df["material_id"].astype(str)))
    if len(ids) < n_folds:
        raise EcdflowError(f"{len(ids)} materials cannot make {n_folds} CV folds")
    out: Splits = {}
    for k, (tr, te) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(ids)):
        out[f"cv-{k}"] = {"train": ids[tr].tolist(), "test": ids[te].tolist()}
    elements = element_sets(index_df)
    for el in loeo_elements:
        test = {m for m in ids if el in elements[m]}
        if not test:
            log.warning("LOEO element %s is in no material: split skipped", el)
            continue
        out[f"loeo-{el}"] = {"train": [m for m in ids if m not in test],
                             "test": [m for m in ids if m in test]}
    return out


def split_kind(name: str) -> tuple[str, str]:
    """``("cv", "0")`` for ``cv-0``, ``("loeo", "Cs")`` for ``loeo-Cs``."""
    kind, _, fold = name.partition("-")
    return kind, fold


def splits_digest(splits: Splits) -> str:
    """A short sha256 of the splits (logged as a param so runs can be checked for equality)."""
    return hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()[:16]


def save_splits(splits: Splits, path: str | Path) -> Path:
    """Write ``splits`` as JSON (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(splits, sort_keys=True))
    tmp.replace(path)
    return path


def load_splits(path: str | Path) -> Splits:
    """Read splits written by :func:`save_splits`."""
    return json.loads(Path(path).read_text())


def splits_path(settings: Settings, data_hash: str) -> Path:
    """Where the splits of one data version live (keyed by data hash, seed and fold count)."""
    name = f"{data_hash[:16]}-seed{settings.seed}-k{settings.splits.n_folds}.json"
    return settings.work_dir / "splits" / name


def get_splits(settings: Settings, index_df: pd.DataFrame, data_hash: str) -> Splits:
    """The splits of this data version: loaded if already made, else made and saved.

    A saved file made with fewer LOEO elements is extended, never re-folded.
    """
    path = splits_path(settings, data_hash)
    splits = load_splits(path) if path.exists() else {}
    missing = [e for e in settings.splits.loeo_elements if f"loeo-{e}" not in splits]
    if not splits or missing:
        fresh = make_splits(index_df, settings.splits.n_folds, settings.splits.loeo_elements,
                            settings.seed)
        splits = {**fresh, **splits}
        save_splits(splits, path)
    return splits


def split_names(settings: Settings, index_df: pd.DataFrame) -> list[str]:
    """The split names to train: ``cv-<k>`` for ``splits.folds`` (None: all) then
    ``loeo-<El>`` for the configured elements present in ``index_df``."""
    folds = settings.splits.folds
    folds = list(range(settings.splits.n_folds)) if folds is None else folds
    bad = [k for k in folds if not 0 <= k < settings.splits.n_folds]
    if bad:
        raise EcdflowError(f"splits.folds {bad} outside 0..{settings.splits.n_folds - 1}")
    present = set().union(*element_sets(index_df).values())
    return [f"cv-{k}" for k in folds] + [
        f"loeo-{e}" for e in settings.splits.loeo_elements if e in present]


def select_split(splits: Splits, name: str) -> dict[str, list[str]]:
    """One split by name; unknown names raise a one-line error listing valid ones."""
    if name not in splits:
        raise EcdflowError(f"unknown split '{name}' (valid: {', '.join(splits)})")
    return splits[name]


def validation_ids(train_ids: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded ``fraction`` of ``train_ids`` held out for early stopping (same for every model
    and target of a split)."""
    ids = sorted(train_ids)
    n_val = max(1, round(len(ids) * fraction)) if len(ids) > 1 else 0
    rng = np.random.default_rng(seed)
    return sorted(rng.permutation(ids)[:n_val].tolist())
