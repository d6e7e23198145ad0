"""Served inputs: one user row (CIF/POSCAR/JSON/CHGCAR text or a formula) parsed and checked
for the Fm-3m models, then the model inputs of a batch (ECD e/Å^3 on the model grid, Magpie
(n, 132), volume per atom Å^3/atom), and the density-source rule (docs/inputs.md).

Every function returns a per-row error (``<where>: <reason>``) instead of raising, so one bad
row never breaks the batch; used by ``ecdflow.serve.predict_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ecdflow.errors import InputError
from ecdflow.schema import INPUT_VOLUME, TABULAR_INPUTS

FORMATS = ("cif", "poscar", "json", "chgcar", "formula")
MAX_Z = 86
"""Elements above Rn are refused (no training data, radioactive)."""


@dataclass(frozen=True)
class Parsed:
    """One parsed input row: the structure (None for a formula), the composition, and for
    CHGCAR input the density on the model grid (e/Å^3); ``error`` is set instead when the row
    is refused."""

    structure: Any = None
    ecd: np.ndarray | None = None
    error: str = ""
    composition: Any = None
    cube: Any = None
    """The conventional Fm-3m cube of ``structure`` (found once, while checking it)."""


def _check_structure(structure) -> str:
    """Why a structure cannot be predicted ("" when it can)."""
    return _check_and_cube(structure)[0]


def _check_and_cube(structure) -> tuple[str, Any]:
    """Why a structure cannot be predicted ("" when it can), and its conventional cube.

    The cube is found once here (``ecdflow.cube.conventional_cell``, on the same crystal
    re-expressed by ``_cube_aligned`` when that applies, which spares spglib) and reused for
    the density."""
    from pymatgen.core import Structure

    if not isinstance(structure, Structure) or len(structure) == 0:
        return "not a crystal structure", None
    if not structure.is_ordered:
        return "disordered structure (partial occupancies) not supported", None
    reason = _check_elements(structure.composition)
    if reason:
        return reason, None
    if structure.volume <= 0 or structure.density > 30:
        return "not a physical crystal (volume/density)", None
    try:
        from ecdflow.cube import conventional_cell

        cube = conventional_cell(_cube_aligned(structure) or structure)
    except Exception as exc:  # noqa: BLE001 - InputError or a symmetry failure
        lines = str(getattr(exc, "what", None) or exc).splitlines()
        return (f"not a Fm-3m crystal (the models cover Fm-3m only): {(lines or [''])[0][:160]}",
                None)
    return "", cube


_FCC_PRIMITIVE = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]) / 2.0
"""Rows: the primitive fcc vectors in units of the cube edge a (the committed table's cells)."""
_FCC_GRAM = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]])
"""Their Gram matrix over the squared length (a^2 / 2): equal lengths, 60 degree angles."""


def _cube_aligned(structure, tol: float = 1e-6):
    """The same crystal as a cube-aligned primitive fcc cell (``a/2 [[0,1,1],[1,0,1],[1,1,0]]``
    rows), or None when the cell is neither such a cell nor a cube in another orientation.

    Only the metric (Gram matrix) of the cell is read, so the crystal's fractional
    coordinates are kept: a rotated (or mirrored) primitive cell, as a CIF round trip gives,
    keeps its fractional coordinates; a conventional cube (any orientation) keeps one atom of
    each fcc-translation quartet (None unless every atom has its 4 partners). The result
    feeds ``conventional_cell``, whose spglib-free route takes exactly this setting; that
    route still verifies the full m-3m symmetry and else falls back to spglib, so nothing is
    assumed here but the lattice. A mirror image is the same crystal (m-3m holds inversion).
    """
    from pymatgen.core import Lattice, Structure

    lat = structure.lattice.matrix
    gram = lat @ lat.T
    d = float(gram[0, 0])
    if d <= 0:
        return None
    g = gram / d
    frac = structure.frac_coords
    species = [site.specie for site in structure]
    if np.allclose(g, _FCC_GRAM, atol=tol):
        a = float(np.sqrt(2.0 * d))
    elif np.allclose(g, np.eye(3), atol=tol) and len(structure) % 4 == 0:
        a = float(np.sqrt(d))
        f = np.mod(frac @ np.linalg.inv(_FCC_PRIMITIVE), 1.0)  # cube -> primitive fractional
        diff = f[:, None, :] - f[None, :, :]
        diff -= np.round(diff)
        z = np.array([sp.Z for sp in species])
        same = np.all(np.abs(diff) < 1e-5, axis=2) & (z[:, None] == z[None, :])
        if not np.all(same.sum(axis=1) == 4):
            return None
        keep = [i for i in range(len(f)) if not same[i, :i].any()]
        frac, species = f[keep], [species[i] for i in keep]
    else:
        return None
    return Structure(Lattice(a * _FCC_PRIMITIVE), species, frac)


def _check_elements(composition) -> str:
    for el in composition.elements:
        sym = getattr(el, "symbol", str(el))
        if getattr(el, "is_lanthanoid", False) or getattr(el, "is_actinoid", False):
            return (f"unsupported element {sym} "
                    "(lanthanides/actinides are excluded, as in the paper)")
        if getattr(el, "Z", 0) > MAX_Z or getattr(el, "Z", 0) < 1:
            return f"unsupported element {sym}"
    return ""


def parse_input(text: Any, fmt: str | None, grid: int, needs_ecd: bool,
                where: str = "input") -> Parsed:
    """Parse one input row with ``ecdflow.io.parse_text``; never raises.

    Args:
        text: CIF/POSCAR/CHGCAR text, a pymatgen structure dict as JSON, or a formula.
        fmt: a hint (one of ``FORMATS``) or empty/None; content wins over it.
        grid: model grid (points per cube edge) for CHGCAR resampling.
        needs_ecd: whether the model reads the density (CHGCAR is then resampled; a formula,
            having no structure, is refused).
        where: the name put in front of every error.

    Returns:
        ``Parsed`` with ``error`` = ``<where>: <reason>`` when the row is refused.
    """
    from ecdflow.io import parse_text

    if isinstance(text, bytes):
        from ecdflow.io.raw import decode_text, decompress

        try:
            text = decode_text(decompress(text, where)[0], where)
        except InputError as exc:
            return Parsed(error=str(exc))
    if not isinstance(text, str) or not text.strip():
        return Parsed(error=f"{where}: empty input")
    try:
        item = parse_text(text, where, hint=(fmt or "").strip().lower())
    except InputError as exc:
        return Parsed(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug must not break the batch
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return Parsed(error=f"{where}: cannot read input ({type(exc).__name__}: {msg})")
    if item.structure is None:
        if needs_ecd:
            return Parsed(error=f"{where}: a formula has no structure, and this model needs "
                                "a charge density; give a CIF/POSCAR/CHGCAR or use a Magpie "
                                "model", composition=item.composition)
        reason = _check_elements(item.composition)
        return (Parsed(error=f"{where}: {reason}", composition=item.composition) if reason
                else Parsed(composition=item.composition))
    reason, cube = _check_and_cube(item.structure)
    if reason:
        return Parsed(error=f"{where}: {reason}", composition=item.composition)
    ecd = None
    if needs_ecd and item.rho is not None:
        from ecdflow.chgcar import to_model_grid

        ecd = np.asarray(to_model_grid(item.structure, item.rho, grid), dtype=np.float32)
    return Parsed(structure=item.structure, ecd=ecd, composition=item.composition, cube=cube)


def _procrystal(structure, grid: int, smearing_A: float, cube=None) -> np.ndarray:
    """``procrystal_density(structure)`` (e/Å^3, (N, N, N)); with ``cube`` (its conventional
    cell, already found by ``_check_and_cube``) the same density without standardising again
    (``ecdflow.density.procrystal_on_cube``)."""
    from ecdflow.density import procrystal_density, procrystal_on_cube

    rho = (procrystal_density(structure, grid=grid, smearing_A=smearing_A) if cube is None
           else procrystal_on_cube(cube, grid, smearing_A))
    return np.asarray(rho, np.float32)


def build_inputs(parsed: list[Parsed], inputs: list[str], grid: int, smearing_A: float,
                 where: list[str] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Model inputs for the good rows and an error per row (featurisation may still fail).

    Magpie rows go through ``ecdflow.features.featurize`` (the same check as training: exact
    formula, finite features, the element without data named). Returns
    ``({"ecd": (n,N,N,N,1) e/Å^3, "magpie": (n,132)}, errors)``; ``n`` counts the rows whose
    error is empty, in order.
    """
    from ecdflow.features import featurize
    from ecdflow.schema import MAGPIE_LEN

    where = where or [f"row {i}" for i in range(len(parsed))]
    errors = [p.error for p in parsed]
    ecd: dict[int, np.ndarray] = {}
    mag: dict[int, np.ndarray] = {}
    if "ecd" in inputs:
        for i, p in enumerate(parsed):
            if errors[i]:
                continue
            try:
                e = (p.ecd if p.ecd is not None
                     else _procrystal(p.structure, grid, smearing_A, p.cube))
                if not np.all(np.isfinite(e)):
                    raise ValueError("non-finite density values")
                ecd[i] = e
            except Exception as exc:  # noqa: BLE001 - per-row error
                msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                errors[i] = f"{where[i]}: cannot build the charge density: {msg}"
    if "magpie" in inputs:
        idx = [i for i, e in enumerate(errors) if not e]
        x, errs = featurize([parsed[i].composition.element_composition.formula for i in idx],
                            where=[f"{where[i]} ({parsed[i].composition.reduced_formula})"
                                   for i in idx])
        for k, i in enumerate(idx):
            if errs[k]:
                errors[i] = errs[k]
            else:
                mag[i] = x[k]
    vol: dict[int, float] = {}
    if INPUT_VOLUME in inputs:
        from ecdflow.features import volume_per_atom

        for i, p in enumerate(parsed):
            if errors[i]:
                continue
            if p.structure is None:
                errors[i] = (f"{where[i]}: a formula has no structure, and this model needs "
                             "the volume per atom; give a CIF/POSCAR/CHGCAR or use a Magpie "
                             "model")
                continue
            try:
                vol[i] = volume_per_atom(p.structure, where[i])
            except InputError as exc:
                errors[i] = str(exc)
    good = [i for i, e in enumerate(errors) if not e]
    out: dict[str, np.ndarray] = {}
    if INPUT_VOLUME in inputs:
        out[INPUT_VOLUME] = np.asarray([[vol[i]] for i in good], np.float32).reshape(-1, 1)
    if "ecd" in inputs:
        out["ecd"] = np.empty((len(good), grid, grid, grid, 1), np.float32)
        for k, i in enumerate(good):  # one copy into the batch, no intermediate stack
            out["ecd"][k, ..., 0] = ecd[i]
    if "magpie" in inputs:
        out["magpie"] = (np.stack([mag[i] for i in good]) if good
                         else np.zeros((0, MAGPIE_LEN), np.float32))
    return {k: out[k] for k in ("ecd", *TABULAR_INPUTS) if k in out}, errors


def density_mismatch(parsed: list[Parsed], manifest: dict, where: list[str], allow: bool
                     ) -> tuple[list[Parsed], list[str]]:
    """Apply the density-source rule (docs/inputs.md) to the parsed rows of a density model.

    A row's density source is ``chgcar`` when it came with a CHGCAR density, else
    ``procrystal`` (built from the structure). When it differs from the model's training
    source (manifest ``density_source.kind``; ``procrystal`` for versions registered before
    the field), the row is refused with one line, or, with ``allow``, predicted and flagged.

    Returns:
        (parsed rows, refused ones with ``error`` set; a flag per row, "" when none).
    """
    from dataclasses import replace

    from ecdflow.schema import DENSITY_CHGCAR, DENSITY_PROCRYSTAL, INPUT_ECD

    flags = [""] * len(parsed)
    if INPUT_ECD not in manifest["inputs"]:
        return parsed, flags
    trained = (manifest.get("density_source") or {}).get("kind") or DENSITY_PROCRYSTAL
    out = list(parsed)
    for i, p in enumerate(parsed):
        given = DENSITY_CHGCAR if p.ecd is not None else DENSITY_PROCRYSTAL
        if p.error or given == trained:
            continue
        msg = f"density source {given} differs from the model's training density ({trained})"
        if allow:
            flags[i] = msg
        else:
            out[i] = replace(p, error=f"{where[i]}: {msg}; refused (set "
                                      "allow_density_source_mismatch to predict, flagged)")
    return out, flags
