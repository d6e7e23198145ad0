"""The TFRecord example schema (version 1): encoding, shard writing and the manifest.

One ``tf.train.Example`` per material (see docs/architecture.md, "TFRecord example"):

- ``material_id``, ``formula`` (bytes), ``elements`` (bytes list)
- ``ecd``: the charge density on the conventional cube, raw little-endian bytes of an
  (N, N, N) array in e/Å^3, stored as ``ecd_dtype`` (float32 or float16); ``ecd_shape`` (3 ints)
- ``magpie``: 132 float32 Magpie features
- ``volume_per_atom``: 1 float, Å^3/atom (NaN without a structure; added to schema 1 as an
  optional field: records written before it read as NaN, manifest ``has_volume`` says whether
  the records carry it)
- ``K_VRH``, ``G_VRH``: Voigt-Reuss-Hill moduli in GPa (NaN when missing)
- ``provenance``: a JSON string (label source, ECD source, settings)

Shards sit in one directory (local or ``s3://``) beside ``manifest.json`` (count, shards,
schema_version, grid, dtype, compression, data_hash). The tf.data reader
(``make_dataset``, ``read_index``) is ``ecdflow.records_reader`` and takes the layout from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ecdflow.schema import (
    DENSITY_CHGCAR,
    DENSITY_NONE,
    DENSITY_PROCRYSTAL,
    GRID_PARAM,
    INPUT_VOLUME,
    MAGPIE_LEN,
    is_remote,
)

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_PREFIX = "part"
PROVENANCE_KEYS = (
    "family", "potential", "sevenn_version", "torch_version", "strain", "fmax_eV_A",
    "max_steps", "seed", "device", "ecd_source",
)
"""Row keys copied into the ``provenance`` JSON string when present."""
_SUFFIX = {"": ".tfrecord", "GZIP": ".tfrecord.gz", "ZLIB": ".tfrecord.zz"}


def shard_suffix(compression: str) -> str:
    """File suffix of a shard for a TF compression name ("", "GZIP" or "ZLIB")."""
    if compression not in _SUFFIX:
        raise ValueError(f"unknown compression {compression!r} (use '', GZIP or ZLIB)")
    return _SUFFIX[compression]


def join_path(base: str, name: str) -> str:
    """``name`` inside the directory ``base`` (local path or ``s3://`` URL)."""
    return f"{str(base).rstrip('/')}/{name}"


def tf_for(path: str):
    """Import TensorFlow, plus tensorflow_io when ``path`` is remote (registers ``s3://``)."""
    import tensorflow as tf

    if is_remote(path):
        import tensorflow_io  # noqa: F401  (registers s3:// in tf.io.gfile and tf.data)
    return tf


def _float(v: Any) -> float:
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _provenance(row: dict) -> str:
    prov = {k: row[k] for k in PROVENANCE_KEYS if k in row and row[k] is not None}
    prov.update(row.get("provenance") or {})
    prov["schema_version"] = SCHEMA_VERSION
    return json.dumps(prov, sort_keys=True, default=str)


def row_volume(row: dict) -> float:
    """Volume per atom (Å^3/atom) of a table row with a structure, NaN without one
    (``ecdflow.features.volume_per_atom`` of ``ecdflow.data.table.structure_of``)."""
    from ecdflow.data.table import STRUCTURE_KEYS, structure_of
    from ecdflow.features import volume_per_atom

    if not all(row.get(k) is not None for k in STRUCTURE_KEYS):
        return float("nan")
    return volume_per_atom(structure_of(row), str(row.get("material_id", "row")))


def encode_example(row: dict, ecd: np.ndarray, magpie: np.ndarray, dtype: str,
                   volume: float | None = None) -> bytes:
    """Serialize one material as a schema-1 ``tf.train.Example``.

    Args:
        row: materials-table row (``material_id``, ``formula``, ``elements``, ``K_VRH``/``G_VRH``
            in GPa, provenance keys); a missing modulus is stored as NaN.
        ecd: (N, N, N) density on the conventional cube, e/Å^3; None for a composition-only
            row (stored as an empty ``ecd`` with ``ecd_shape`` (0, 0, 0): "no density").
        magpie: 132 Magpie features.
        dtype: storage dtype of the ECD, "float32" or "float16".
        volume: volume per atom, Å^3/atom (default: :func:`row_volume` of ``row``).
    """
    import tensorflow as tf

    if dtype not in ("float32", "float16"):
        raise ValueError(f"unknown ECD dtype {dtype!r} (use float32 or float16)")
    ecd = np.zeros((0, 0, 0), np.float32) if ecd is None else np.asarray(ecd)
    if ecd.ndim != 3:
        raise ValueError(f"ECD must be 3-D, got shape {ecd.shape}")
    mag = np.asarray(magpie, dtype=np.float32).reshape(-1)
    if mag.size != MAGPIE_LEN:
        raise ValueError(f"magpie must have {MAGPIE_LEN} values, got {mag.size}")
    raw = np.ascontiguousarray(ecd.astype(np.dtype(dtype).newbyteorder("<"))).tobytes()
    elements = row.get("elements") or []

    def b(vals: Sequence[bytes]) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(vals)))

    def f(vals: Sequence[float]) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(vals)))

    feats = {
        "material_id": b([str(row["material_id"]).encode()]),
        "formula": b([str(row.get("formula", "")).encode()]),
        "elements": b([str(e).encode() for e in elements]),
        "ecd": b([raw]),
        "ecd_shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(ecd.shape))),
        "ecd_dtype": b([dtype.encode()]),
        "magpie": f(mag.tolist()),
        INPUT_VOLUME: f([row_volume(row) if volume is None else _float(volume)]),
        "K_VRH": f([_float(row.get("K_VRH"))]),
        "G_VRH": f([_float(row.get("G_VRH"))]),
        "provenance": b([_provenance(row).encode()]),
    }
    ex = tf.train.Example(features=tf.train.Features(feature=feats))
    return ex.SerializeToString()


def as_stored(ecd: np.ndarray, dtype: str) -> np.ndarray:
    """A density as training read it back from the records: rounded to the storage ``dtype``
    (``records.dtype``, float16 or float32; :func:`encode_example`), returned as float32, the
    reader's type (``ecdflow.records_reader``). The served model applies it (manifest
    ``ecd_dtype``) so its features are the ones its members were fitted and scored on: a
    float16 rounding moves a density's Fourier invariants by ~1e-5, enough to cross a tree's
    split threshold.

    Raises:
        ValueError: an unknown dtype.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"unknown ECD dtype {dtype!r} (use float32 or float16)")
    return np.asarray(ecd).astype(dtype).astype(np.float32)


def has_density(manifest: dict) -> bool:
    """Whether the records carry an ECD (False for a composition-only table: the manifest says
    ``has_density: false``, ``ecd_source: "none"``, grid 0; only Magpie models can train)."""
    return bool(manifest.get("has_density", True)) and int(manifest.get("grid", 0) or 0) > 0


def write_records(
    examples: Iterable[bytes], out_dir: str, num_shards: int, compression: str
) -> list[str]:
    """Write serialized examples round-robin into ``num_shards`` shards (no Beam).

    Shard names follow the Beam writer: ``part-SSSSS-of-NNNNN<suffix>``. Returns the paths.
    """
    tf = tf_for(out_dir)
    tf.io.gfile.makedirs(str(out_dir))
    suffix = shard_suffix(compression)
    paths = [join_path(out_dir, f"{SHARD_PREFIX}-{i:05d}-of-{num_shards:05d}{suffix}")
             for i in range(num_shards)]
    opts = tf.io.TFRecordOptions(compression_type=compression)
    writers = [tf.io.TFRecordWriter(p, opts) for p in paths]
    try:
        for i, ex in enumerate(examples):
            writers[i % num_shards].write(ex)
    finally:
        for w in writers:
            w.close()
    return paths


def list_shards(records_dir: str) -> list[str]:
    """Sorted shard paths (``part-*``) in ``records_dir`` (local or ``s3://``)."""
    tf = tf_for(records_dir)
    return sorted(tf.io.gfile.glob(join_path(records_dir, f"{SHARD_PREFIX}-*")))


def data_hash(paths: Iterable[str], compression: str = "") -> str:
    """The data version: ``sha256:`` over the sorted sha256 digests of every record.

    Independent of shard count and of the order a runner wrote records in, so rerunning the
    same inputs and settings gives the same version; any byte of any example changes it.
    """
    paths = sorted(paths)
    digests: list[bytes] = []
    if paths:
        tf = tf_for(paths[0])
        for rec in tf.data.TFRecordDataset(paths, compression_type=compression):
            digests.append(hashlib.sha256(rec.numpy()).digest())
    return "sha256:" + hashlib.sha256(b"".join(sorted(digests))).hexdigest()


def count_records(paths: Iterable[str], compression: str) -> int:
    """Number of records in the shards (reads every record once)."""
    paths = list(paths)
    if not paths:
        return 0
    tf = tf_for(paths[0])
    ds = tf.data.TFRecordDataset(paths, compression_type=compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def write_manifest(out_dir: str, manifest: dict) -> str:
    """Write ``manifest.json`` into ``out_dir``; returns its path."""
    tf = tf_for(out_dir)
    path = join_path(out_dir, MANIFEST_NAME)
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_manifest(records_dir: str) -> dict:
    """Read ``manifest.json`` (count, shards, schema_version, grid, dtype, compression, data_hash).

    Raises:
        InputError: no manifest, or a schema version this reader does not know.
    """
    from ecdflow.errors import InputError

    tf = tf_for(records_dir)
    path = join_path(records_dir, MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        raise InputError(str(records_dir), "no manifest.json (run `ecdflow preprocess` first)")
    with tf.io.gfile.GFile(path, "r") as fh:
        manifest = json.loads(fh.read())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, f"schema_version {manifest.get('schema_version')} is not "
                               f"{SCHEMA_VERSION}")
    return manifest


def build_manifest(
    out_dir: str, shards: Sequence[str], *, count: int, grid: int, dtype: str,
    compression: str, digest: str | None = None, extra: dict | None = None,
) -> dict:
    """The manifest dict for shards already written (``shards`` as full paths); ``digest``
    is the precomputed ``data_hash`` (computed here when None)."""
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "count": int(count),
        "shards": [str(s).rstrip("/").rsplit("/", 1)[-1] for s in sorted(shards)],
        GRID_PARAM: int(grid),
        "dtype": dtype,
        "compression": compression,
        "data_hash": digest or data_hash(list(shards), compression),
    }
    manifest.update(extra or {})
    return manifest


_SYN_ELEMENTS = ["Li", "Na", "K", "Rb", "Cs", "F", "Cl", "Br", "In", "Tl", "Sc", "Mg", "O"]


def synthetic_materials(n: int, grid: int, seed: int) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """``n`` seeded fake (row, ecd (grid^3, e/Å^3, >= 0), magpie (132,)) triples for tests."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.choice(len(_SYN_ELEMENTS), size=2, replace=False)
        els = [_SYN_ELEMENTS[a], _SYN_ELEMENTS[b]]
        k = float(rng.uniform(10.0, 300.0))
        row = {
            "material_id": f"syn-{i:04d}",
            "formula": "".join(els),
            "elements": els,
            "K_VRH": k,
            "G_VRH": float(k * rng.uniform(0.2, 0.8)),
            "family": "synthetic",
            "seed": seed,
        }
        ecd = rng.gamma(2.0, 0.05, size=(grid, grid, grid)).astype(np.float32)
        magpie = rng.normal(size=MAGPIE_LEN).astype(np.float32)
        out.append((row, ecd, magpie))
    return out


def write_synthetic_records(
    out_dir: str, n: int, grid: int, seed: int, *, dtype: str = "float32",
    compression: str = "", num_shards: int = 2,
) -> list[str]:
    """Write ``n`` seeded fake materials (ids ``syn-0000``...) + manifest; returns shard paths.

    The arrays are reproducible with ``synthetic_materials(n, grid, seed)``.
    """
    items = synthetic_materials(n, grid, seed)
    shards = write_records((encode_example(r, e, m, dtype) for r, e, m in items),
                           out_dir, num_shards, compression)
    write_manifest(out_dir, build_manifest(out_dir, shards, count=n, grid=grid, dtype=dtype,
                                           compression=compression,
                                           extra={"source": "synthetic", "seed": seed}))
    return shards


def density_kind(manifest: dict) -> str:
    """Density source kind of records: ``procrystal``, ``chgcar`` or ``none`` (its manifest's
    ``ecd_source``; manifests older than that field held procrystal densities)."""
    if not has_density(manifest):
        return DENSITY_NONE
    return str(manifest.get("ecd_source") or DENSITY_PROCRYSTAL)


def density_source(kind: str, grid: int, smearing_A: float | None = None) -> dict:
    """The density-provenance record of records manifests and registered models.

    Returns:
        ``{"kind", "grid"}`` plus, for ``procrystal``, ``model`` (neutral free-atom valence
        Slater orbitals, Slater's screening rules; ``ecdflow.density``), ``smearing_A`` (Å) and
        ``valence`` (outermost s/p plus open d/f shells); for ``chgcar``, ``model`` (VASP
        CHGCAR, self-consistent DFT, resampled to the conventional cube).
    """
    out: dict[str, Any] = {"kind": kind, GRID_PARAM: int(grid)}
    if kind == DENSITY_PROCRYSTAL:
        out.update(model="neutral free-atom valence procrystal, Slater orbitals "
                         "(Slater's screening rules), ecdflow.density",
                   valence="outermost s/p shell plus open d/f shells",
                   smearing_A=float(smearing_A if smearing_A is not None else 0.0))
    elif kind == DENSITY_CHGCAR:
        out.update(model="VASP CHGCAR (self-consistent DFT), resampled to the conventional cube")
    return out
