"""Magpie composition features (matminer ``ElementProperty.from_preset("magpie")``, 132 values).

The 22 elemental properties of matminer's Magpie data are read once into an (elements x 22)
table; the six statistics (minimum, maximum, range, fraction-weighted mean, weighted mean
absolute deviation, mode = the smallest value among the most abundant elements; matminer
``PropertyStats``) are then computed with numpy per formula, identical to matminer's
``featurize`` (tests/unit/test_features.py checks it) and ~100x faster. Results are cached per
reduced formula in memory, so thousands of rows take a second.

``featurize`` is the one function every path (preprocess, build, evaluation, serving) uses: it
never raises for a bad row; it returns an error per row instead, and a row whose features are
not all finite is refused naming the element and property without data (noble gases have no
Pauling electronegativity, so Magpie cannot describe solid Ar).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ecdflow.errors import InputError
from ecdflow.io.formula import parse_formula  # noqa: F401  (the one formula parser)
from ecdflow.schema import MAGPIE_LEN as N_MAGPIE

STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
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


@lru_cache(maxsize=1)
def property_table() -> tuple[list[str], np.ndarray]:
    """(22 property names, float64 array (104, 22)): Magpie data of elements Z = 0..103
    (row 0 unused, NaN where Magpie has no value)."""
    from pymatgen.core import Element

    f = _featurizer()
    if tuple(f.stats) != STATS:
        raise RuntimeError(f"unexpected Magpie statistics {f.stats}")
    table = np.full((104, len(f.features)), np.nan)
    for z in range(1, 104):
        el = Element.from_Z(z)
        for j, prop in enumerate(f.features):
            try:
                table[z, j] = float(f.data_source.get_elemental_property(el, prop))
            except (KeyError, TypeError, ValueError):
                pass
    return list(f.features), table


def _stats(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The six statistics of each property: values (k, 22), amounts (k,) -> (22, 6)."""
    w = weights / weights.sum()
    mean = w @ values
    mode_rows = np.isclose(weights, weights.max())
    with np.errstate(invalid="ignore"):
        out = np.stack([values.min(0), values.max(0), values.max(0) - values.min(0), mean,
                        w @ np.abs(values - mean), values[mode_rows].min(0)], axis=1)
    return out


@lru_cache(maxsize=200_000)
def _row(reduced_key: tuple[tuple[int, float], ...]) -> np.ndarray:
    _, table = property_table()
    z = np.array([k for k, _ in reduced_key])
    amt = np.array([a for _, a in reduced_key])
    return _stats(table[z], amt).reshape(-1).astype(np.float32)


def _key(comp) -> tuple[tuple[int, float], ...]:
    return tuple((el.Z, float(a)) for el, a in comp.element_composition.items())


def nonfinite_reason(comp) -> str:
    """Which element lacks which Magpie property (e.g. ``Ar has no Magpie Electronegativity``)."""
    names, table = property_table()
    parts = []
    for el in comp.elements:
        missing = [names[j] for j in np.flatnonzero(~np.isfinite(table[el.Z]))]
        if missing:
            parts.append(f"{el.symbol} has no Magpie {', '.join(missing)}")
    return "; ".join(parts) or "non-finite Magpie features"


def featurize(formulas: Sequence[object], where: Sequence[str] | None = None
              ) -> tuple[np.ndarray, list[str]]:
    """Magpie features of each formula and an error per row ("" when the row is usable).

    The one check before any model sees Magpie features (training and serving alike): a row
    is refused when its formula does not parse exactly (``ecdflow.io.formula``), holds a
    lanthanide/actinide, or has a non-finite feature (the element and property are named).

    Args:
        formulas: chemical formulas (strings; anything else is an error row).
        where: per-row names for the messages (default: the formula).

    Returns:
        (float32 array (n, 132), NaN rows where the error is set; list of n error strings).
    """
    out = np.full((len(formulas), N_MAGPIE), np.nan, dtype=np.float32)
    errors = [""] * len(formulas)
    for i, f in enumerate(formulas):
        name = where[i] if where is not None else None
        try:
            comp = parse_formula(f, name)
        except InputError as exc:
            errors[i] = str(exc)
            continue
        label = name or comp.reduced_formula
        bad = [el.symbol for el in comp.elements if el.Z in EXCLUDED_Z or el.Z > 103]
        if bad:
            errors[i] = (f"{label}: excluded element {', '.join(bad)} "
                         "(lanthanides/actinides have no training data)")
            continue
        row = _row(_key(comp))
        if not np.all(np.isfinite(row)):
            errors[i] = f"{label}: Magpie features not finite: {nonfinite_reason(comp)}"
            continue
        out[i] = row
    return out, errors


def magpie_features(formulas: Sequence[str]) -> np.ndarray:
    """Magpie features of each formula: float32 array (n, 132) (NaN where Magpie has none;
    :func:`featurize` is the checked entry point). Cached in memory per composition.

    Args:
        formulas: chemical formulas (``ecdflow.io.formula`` grammar).

    Raises:
        InputError: a formula that does not parse exactly (named).
    """
    out = np.empty((len(formulas), N_MAGPIE), dtype=np.float32)
    for i, f in enumerate(formulas):
        out[i] = _row(_key(parse_formula(f)))
    return out


def volume_per_atom(structure, where: str = "structure") -> float:
    """Volume per atom of a crystal: cell volume / number of sites, Å^3/atom (float).

    The same for any cell of the crystal (primitive, conventional, a CHGCAR's cell): both the
    volume and the site count scale with the cell. Schema: ``ecdflow.schema.INPUT_VOLUME``.

    Raises:
        InputError: an empty structure or a non-positive / non-finite volume (named ``where``).
    """
    n = len(structure)
    vol = float(structure.volume)
    if n == 0 or not np.isfinite(vol) or vol <= 0:
        raise InputError(where, f"cannot compute the volume per atom (sites {n}, volume "
                                f"{vol} Å^3)")
    return vol / n


def tabular_matrix(arrays: dict, inputs: Sequence[str]) -> np.ndarray:
    """A scikit-learn model's feature matrix: the ``inputs`` arrays (``magpie`` (n, 132),
    ``volume_per_atom`` (n,) or (n, 1), ``ecd`` (n, N, N, N[, 1]) e/Å^3) side by side in
    ``schema.TABULAR_INPUTS`` order: (n, 132) for Magpie, (n, 133) with the volume, plus
    ``ECD_INVARIANTS_LEN`` columns of Fourier invariants for ``ecd``
    (``ecdflow.density_invariants.ecd_invariants``). Used by training and serving alike.

    Raises:
        InputError: an input the model reads is absent (e.g. a density model given no
            density) or a density cube is refused by ``ecd_invariants``.
    """
    from ecdflow.schema import INPUT_ECD, TABULAR_INPUTS

    missing = [k for k in inputs if k in TABULAR_INPUTS and k not in arrays]
    if missing:
        raise InputError("features", f"the model reads {', '.join(missing)}, which the input "
                                     "lacks")
    cols = []
    for k in TABULAR_INPUTS:
        if k not in inputs:
            continue
        if k == INPUT_ECD:
            from ecdflow.density_invariants import ecd_invariants_batch

            cols.append(ecd_invariants_batch(arrays[k], "ecd"))
        else:
            cols.append(np.asarray(arrays[k]).reshape(len(arrays[k]), -1))
    return np.hstack(cols) if len(cols) > 1 else cols[0]
