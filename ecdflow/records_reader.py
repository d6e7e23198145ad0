"""The tf.data reader of the TFRecords (schema 1, ``ecdflow.records``): batched training
datasets (``make_dataset``) and the per-material index without the densities (``read_index``).

Local directories or ``s3://`` (tensorflow-io imported lazily); the layout is read from the
records' ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from ecdflow.records import has_density, join_path, read_manifest, tf_for
from ecdflow.schema import GRID_PARAM, INPUT_VOLUME, MAGPIE_LEN, TARGETS


def _shard_paths(records_dir: str, manifest: dict) -> list[str]:
    return [join_path(records_dir, s) for s in manifest["shards"]]


def raw_dataset(tf, records_dir: str, manifest: dict):
    """Serialized examples of the records in ``records_dir`` (``manifest`` its
    :func:`ecdflow.records.read_manifest`), shards read in parallel and interleaved
    (deterministic order); ``tf`` the imported TensorFlow module."""
    paths = _shard_paths(records_dir, manifest)
    return tf.data.TFRecordDataset(paths, compression_type=manifest["compression"],
                                   num_parallel_reads=min(len(paths), 8) or None)


def _index_spec(tf) -> dict:
    return {
        "material_id": tf.io.FixedLenFeature([], tf.string),
        "formula": tf.io.FixedLenFeature([], tf.string),
        "elements": tf.io.VarLenFeature(tf.string),
        "K_VRH": tf.io.FixedLenFeature([1], tf.float32),
        "G_VRH": tf.io.FixedLenFeature([1], tf.float32),
    }


def make_dataset(
    records_dir: str,
    *,
    target: str | None = None,
    inputs: tuple[str, ...] = ("ecd", "magpie"),
    ids: Collection[str] | None = None,
    batch_size: int = 32,
    shuffle_seed: int | None = None,
    cache: bool = True,
    log_target: bool = False,
    repeat: bool = False,
):
    """A batched ``tf.data.Dataset`` over the shards in ``records_dir`` (local or ``s3://``).

    Elements are ``(features, label)`` (``features`` only when ``target`` is None).
    ``features`` holds ``material_id`` (string) and, per ``inputs``, ``ecd`` float32
    (N, N, N, 1) in e/Å^3, ``magpie`` float32 (132,) and ``volume_per_atom`` float32 (1,)
    Å^3/atom (only when the manifest says ``has_volume``). ``label`` is float32 (1,): the target
    modulus in GPa, or log10(GPa) with ``log_target``. Materials whose target is NaN (or <= 0
    with ``log_target``) are skipped. ``ids`` keeps only those material ids. ``shuffle_seed``
    None keeps the file order (interleaved, deterministic); ``batch_size`` <= 0 gives unbatched
    elements.
    """
    tf = tf_for(records_dir)
    manifest = read_manifest(records_dir)
    grid, dtype = int(manifest[GRID_PARAM]), manifest["dtype"]
    bad = set(inputs) - {"ecd", "magpie", INPUT_VOLUME}
    if bad or not inputs:
        raise ValueError("inputs must be a non-empty subset of ('ecd', 'magpie', "
                         f"'{INPUT_VOLUME}'), got {inputs}")
    if target is not None and target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if "ecd" in inputs and not has_density(manifest):
        from ecdflow.errors import InputError

        raise InputError(str(records_dir), "these records carry no density (composition-only "
                                           "table): only Magpie models can read them")
    if INPUT_VOLUME in inputs and not manifest.get("has_volume", False):
        from ecdflow.errors import InputError

        raise InputError(str(records_dir), "these records carry no volume per atom "
                                           "(composition-only table, or written before the "
                                           "field: rerun `ecdflow preprocess`)")
    spec: dict[str, Any] = {"material_id": tf.io.FixedLenFeature([], tf.string)}
    if INPUT_VOLUME in inputs:
        spec[INPUT_VOLUME] = tf.io.FixedLenFeature([1], tf.float32, default_value=[np.nan])
    if "ecd" in inputs:
        spec["ecd"] = tf.io.FixedLenFeature([], tf.string)
    if "magpie" in inputs:
        spec["magpie"] = tf.io.FixedLenFeature([MAGPIE_LEN], tf.float32)
    if target:
        spec[target] = tf.io.FixedLenFeature([1], tf.float32)
    store = tf.float16 if dtype == "float16" else tf.float32

    ds = raw_dataset(tf, records_dir, manifest)
    ds = ds.map(lambda s: tf.io.parse_single_example(s, spec), num_parallel_calls=tf.data.AUTOTUNE)
    if ids is not None:
        keys = tf.constant(sorted({str(i) for i in ids}) or [""], dtype=tf.string)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, dtype=tf.int64)),
            default_value=0)
        wanted = len(ids) > 0
        ds = ds.filter(lambda ex: tf.logical_and(wanted, table.lookup(ex["material_id"]) > 0))
    if target:
        def _ok(ex):
            y = ex[target][0]
            ok = tf.math.is_finite(y)
            return tf.logical_and(ok, y > 0) if log_target else ok
        ds = ds.filter(_ok)

    def _decode(ex):  # one example or a batch (leading dimension kept)
        feats = {"material_id": ex["material_id"]}
        lead = tf.shape(ex["material_id"])
        if "ecd" in inputs:
            rho = tf.io.decode_raw(ex["ecd"], store, little_endian=True)
            shape = tf.concat([lead, [grid, grid, grid, 1]], axis=0)
            feats["ecd"] = tf.cast(tf.reshape(rho, shape), tf.float32)
        if "magpie" in inputs:
            feats["magpie"] = ex["magpie"]
        if INPUT_VOLUME in inputs:
            feats[INPUT_VOLUME] = ex[INPUT_VOLUME]
        if not target:
            return feats
        y = ex[target]
        if log_target:
            y = tf.math.log(y) / tf.math.log(tf.constant(10.0))
        return feats, y

    if cache:
        ds = ds.cache()  # parsed, still-encoded examples: float16 storage halves the memory
    if shuffle_seed is not None:
        ds = ds.shuffle(max(int(manifest["count"]), 1), seed=shuffle_seed,
                        reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()  # before batching: every batch is full
    if batch_size and batch_size > 0:
        ds = ds.batch(batch_size)  # then decode a whole batch at once (vectorized)
    ds = ds.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def read_index(records_dir: str):
    """Per-material table without decoding the ECD, in file order.

    Returns a DataFrame with ``material_id``, ``formula``, ``elements`` (list of symbols),
    ``K_VRH``, ``G_VRH`` (GPa, NaN when missing) - for splits and evaluation.
    """
    import pandas as pd

    tf = tf_for(records_dir)
    manifest = read_manifest(records_dir)
    spec = _index_spec(tf)
    ds = raw_dataset(tf, records_dir, manifest)
    rows = []
    for batch in ds.batch(256).map(lambda s: tf.io.parse_example(s, spec)):
        elements = tf.RaggedTensor.from_sparse(batch["elements"]).to_list()
        for i, mid in enumerate(batch["material_id"].numpy()):
            rows.append({
                "material_id": mid.decode(),
                "formula": batch["formula"][i].numpy().decode(),
                "elements": [e.decode() for e in elements[i]],
                "K_VRH": float(batch["K_VRH"][i, 0]),
                "G_VRH": float(batch["G_VRH"][i, 0]),
            })
    return pd.DataFrame(rows, columns=["material_id", "formula", "elements", "K_VRH", "G_VRH"])
