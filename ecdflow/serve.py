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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ecdflow.errors import InputError
from ecdflow.schema import INPUT_VOLUME, TABULAR_INPUTS

MANIFEST = "manifest.json"
FORMATS = ("cif", "poscar", "json", "chgcar", "formula")
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]
"""Types a ``.skops`` member may hold beyond skops' trusted defaults (random forests)."""
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

    The cube is found once here (``ecdflow.density.conventional_cell``, on the same crystal
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
        from ecdflow.density import conventional_cell

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
    cell, already found by ``_check_and_cube``) the same density without standardising again:
    the density on that cube, as ``procrystal_density`` computes it."""
    from ecdflow.density import density_on_cube, procrystal_density

    if cube is None:
        return np.asarray(procrystal_density(structure, grid=grid, smearing_A=smearing_A),
                          np.float32)
    return np.asarray(density_on_cube([site.specie.symbol for site in cube], cube.frac_coords,
                                      cube.lattice.a, grid, smearing_A), np.float32)


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


class ModulusEnsemble(mlflow.pyfunc.PythonModel):
    """Fold-model ensemble predicting one modulus (GPa) from structures or CHGCARs.

    Artifacts: ``manifest`` (JSON: target, model_type, inputs, grid, smearing_A, log_target,
    tta (test-time averaging set, ``ecdflow.symmetry``; absent: none),
    members) and one artifact per member (``member_<i>``: a ``.keras`` file, or a joblib or
    ``.skops`` file of a scikit-learn estimator on the tabular inputs, (n, 132) Magpie or
    (n, 133) Magpie + volume per atom); ``calibration`` and ``domain`` (``ecdflow.uncertainty``)
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
                lower[i], upper[i] = float(lo[k]), float(hi[k])
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


def load_member(path: str):
    """Load one fold model: Keras (``.keras``), scikit-learn in skops format (``.skops``,
    the shipped models; only ``SKOPS_TRUSTED`` types beyond skops' defaults) or joblib."""
    if str(path).endswith(".keras"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import ecdflow.models  # noqa: F401  (registers custom Keras objects, if any)
        except ImportError:
            pass
        import keras

        return keras.saving.load_model(path, compile=False)
    if str(path).endswith(".skops"):
        import skops.io

        return skops.io.load(path, trusted=SKOPS_TRUSTED)
    import joblib

    return joblib.load(path)


def member_predict(member, x: dict[str, np.ndarray]) -> np.ndarray:
    """One fold model's predictions (training-target space), shape (n,). A scikit-learn
    member reads the tabular inputs of ``x`` side by side in ``schema.TABULAR_INPUTS`` order."""
    if hasattr(member, "inputs") and not hasattr(member, "get_params"):  # Keras, not sklearn
        names = [getattr(t, "name", "").split(":")[0] for t in member.inputs]
        feed = {k: v for k, v in x.items() if k in names} or x
        n = len(next(iter(feed.values())))
        return np.asarray(member.predict(feed, verbose=0, batch_size=min(32, max(n, 1)))
                          ).reshape(-1)
    from ecdflow.features import tabular_matrix

    return np.asarray(member.predict(tabular_matrix(x, [k for k in TABULAR_INPUTS if k in x]))
                      ).reshape(-1)


CHUNK = 64
"""Rows per Keras call: bounds the activations' memory (a 60^3 batch of 64 is 55 MB of input)."""


def _is_keras(member) -> bool:
    """A real Keras model (traced in one call); anything else with a ``predict`` (scikit-learn,
    a user's or a test's stand-in) goes through :func:`member_predict`."""
    import sys

    keras = sys.modules.get("keras")  # loaded whenever a Keras member was
    return keras is not None and isinstance(member, keras.Model)


def ensemble_predict(members: list, x: dict[str, np.ndarray]) -> np.ndarray:
    """Every fold model's predictions (training-target space), shape (members, n).

    The Keras members run together in one ``tf.function`` per ensemble (fixed input
    signature, batch dimension free, so it is traced once) on chunks of ``CHUNK`` rows:
    ``model.predict`` builds a dataset and a loop on every call, which cost more than the
    forward pass itself for a few structures. Same layers, same weights, inference mode:
    the numbers are ``member_predict``'s within float32 rounding. Other members (scikit-learn)
    go through ``member_predict``.
    """
    n = len(next(iter(x.values())))
    out = np.empty((len(members), n), np.float32)
    keras_idx = [i for i, m in enumerate(members) if _is_keras(m)]
    if keras_idx and n:
        run = _keras_runner([members[i] for i in keras_idx])
        for lo in range(0, n, CHUNK):
            chunk = {k: v[lo:lo + CHUNK] for k, v in x.items() if k in run.input_names}
            out[keras_idx, lo:lo + CHUNK] = run(chunk).numpy()
    for i, m in enumerate(members):
        if i not in keras_idx:
            out[i] = member_predict(m, x)
    return out


_RUNNERS: dict[tuple[int, ...], tuple[list, Any]] = {}


def _keras_runner(members: list):
    """The traced forward pass of ``members`` (cached per ensemble): feed dict -> (m, n)."""
    key = tuple(id(m) for m in members)
    hit = _RUNNERS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], members, strict=True)):
        return hit[1]
    import tensorflow as tf

    specs: dict[str, Any] = {}
    for m in members:
        for t in m.inputs:
            specs[getattr(t, "name", "").split(":")[0]] = tf.TensorSpec(
                (None, *tuple(t.shape)[1:]), tf.float32)

    def feed_of(m, feed: dict) -> Any:
        struct = m.input  # as the model was built: a dict, a list or one tensor
        if isinstance(struct, dict):
            return {k: feed[getattr(t, "name", k).split(":")[0]] for k, t in struct.items()}
        names = [getattr(t, "name", "").split(":")[0] for t in m.inputs]
        if isinstance(struct, list | tuple):
            return [feed[k] for k in names]
        return feed[names[0]]

    @tf.function(input_signature=[specs], reduce_retracing=True)
    def run(feed):
        return tf.stack([tf.reshape(tf.cast(m(feed_of(m, feed), training=False), tf.float32),
                                    [-1]) for m in members])

    run.input_names = set(specs)
    while len(_RUNNERS) >= 4:  # a process serves one ensemble; tests load a few
        _RUNNERS.pop(next(iter(_RUNNERS)))
    _RUNNERS[key] = (list(members), run)
    return run


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
