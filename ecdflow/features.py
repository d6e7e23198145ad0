"""Magpie composition features (matminer ``ElementProperty.from_preset("magpie")``, 132 values).

Features are cached per reduced formula in a JSON file (``magpie-cache.json`` under the given
cache folder), so a rebuild only featurises new compositions (~3 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ecdflow.errors import InputError
from ecdflow.schema import MAGPIE_LEN as N_MAGPIE

CACHE_NAME = "magpie-cache.json"
EXCLUDED_Z = set(range(57, 72)) | set(range(89, 104))


@lru_cache(maxsize=1)
def _featurizer():
    from matminer.featurizers.composition import ElementProperty

    return ElementProperty.from_preset("magpie", impute_nan=False)


def magpie_labels() -> list[str]:
    """The 132 Magpie feature names, in column order."""
    return list(_featurizer().feature_labels())


def __getattr__(name: str):
    if name == "MAGPIE_LABELS":  # lazy: importing matminer takes a second
        return magpie_labels()
    raise AttributeError(name)


def parse_formula(formula: str):
    """A pymatgen ``Composition`` of ``formula``; InputError for bad or unknown elements."""
    from pymatgen.core import Composition

    if not isinstance(formula, str) or not formula.strip():
        raise InputError(repr(formula), "empty formula")
    try:
        comp = Composition(formula)
    except Exception:  # pymatgen raises ValueError/KeyError/... for odd strings
        raise InputError(formula, "formula does not parse (unknown element or syntax)") from None
    if comp.num_atoms <= 0:
        raise InputError(formula, "formula has no atoms")
    from pymatgen.core import Element

    for el in comp.elements:  # unknown symbols parse as DummySpecies, not Element
        if not isinstance(el, Element):
            raise InputError(formula, f"unknown element {getattr(el, 'symbol', el)}")
    return comp


def _load_cache(path: Path | None) -> dict[str, list[float]]:
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged cache is rebuilt


def magpie_features(formulas: Sequence[str], cache_dir: Path | None = None) -> np.ndarray:
    """Magpie features of each formula: float32 array (n, 132) (NaN where Magpie has none).

    Args:
        formulas: chemical formulas (any notation pymatgen parses).
        cache_dir: folder for the per-formula JSON cache (None: no disk cache).

    Raises:
        InputError: a formula that does not parse or holds an unknown element (named).
    """
    path = Path(cache_dir) / CACHE_NAME if cache_dir is not None else None
    cache = _load_cache(path)
    out = np.empty((len(formulas), N_MAGPIE), dtype=np.float32)
    new = 0
    for i, formula in enumerate(formulas):
        comp = parse_formula(formula)
        key = comp.reduced_formula
        if key not in cache:
            try:
                cache[key] = [float(v) for v in _featurizer().featurize(comp)]
            except Exception as exc:  # matminer: missing element data
                raise InputError(formula, f"Magpie featurisation failed ({exc})") from None
            new += 1
        out[i] = cache[key]
    if path is not None and new:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    return out
