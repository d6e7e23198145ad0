"""tf.data and numpy views of the TFRecords for training: the model's inputs only, the
training-set statistics, predictions. Reads through ``ecdflow.records_reader.make_dataset``.

Shapes: ``ecd`` (batch, N, N, N, 1) float32 e/Å^3, ``magpie`` (batch, 132) float32; labels
(batch, 1) in the training-target space (GPa, or log10 GPa with ``training.log_target``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ecdflow.models import InputStats
from ecdflow.records_reader import make_dataset
from ecdflow.schema import INPUT_ECD, INPUT_MAGPIE


def keras_dataset(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                  batch_size: int, shuffle_seed: int | None, log_target: bool,
                  augment: str = "none") -> Any:
    """``(features, label)`` batches with only the model's ``inputs`` as features.

    ``augment`` (a ``SymmetryMode``, ``training.augment_symmetry``): each ECD example goes
    through one random operation of that set (``ecdflow.symmetry.augment_dataset``, seeded
    by ``shuffle_seed``, new draws each epoch); ignored for models without an ECD input.
    """
    from ecdflow.symmetry import augment_dataset, operations

    if augment == "none" or INPUT_ECD not in inputs:
        ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids,
                          batch_size=batch_size, shuffle_seed=shuffle_seed, cache=True,
                          log_target=log_target)
        return ds.map(lambda f, y: ({k: f[k] for k in inputs}, y))
    operations(augment)  # unknown mode: ValueError before any reading
    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids, batch_size=0,
                      shuffle_seed=shuffle_seed, cache=True, log_target=log_target)
    ds = ds.map(lambda f, y: ({k: f[k] for k in inputs}, y))
    ds = augment_dataset(ds, augment, 0 if shuffle_seed is None else int(shuffle_seed))
    return ds.batch(batch_size).prefetch(2)


def _numpy_batches(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                   log_target: bool, batch_size: int
                   ) -> Iterator[tuple[list[str], dict[str, np.ndarray], np.ndarray]]:
    """Material ids, feature arrays of ``inputs`` and labels of ``ids`` as numpy, one batch of
    the records (file order) at a time."""
    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids,
                      batch_size=batch_size, cache=False, log_target=log_target)
    for f, y in ds:
        yield ([m.decode() for m in f["material_id"].numpy()],
               {k: f[k].numpy() for k in inputs}, y.numpy().reshape(-1))


def dataset_arrays(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                   log_target: bool) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Material ids, feature arrays and labels (file order) of ``ids`` as numpy."""
    mids: list[str] = []
    feats: dict[str, list[np.ndarray]] = {k: [] for k in inputs}
    ys: list[np.ndarray] = []
    for m, f, y in _numpy_batches(records_dir, target, inputs, ids, log_target, 256):
        mids += m
        for k in inputs:
            feats[k].append(f[k])
        ys.append(y)
    arrays = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in feats.items()}
    return mids, arrays, np.concatenate(ys) if ys else np.zeros(0, np.float32)


def tabular_arrays(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                   log_target: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Material ids, a scikit-learn model's feature matrix (``ecdflow.features.tabular_matrix``
    of ``inputs``, the serving path's function) and labels, batch by batch: a density input is
    reduced to its invariants per batch of 64, so 60^3 cubes never sit in memory together."""
    from ecdflow.features import tabular_matrix

    mids: list[str] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for m, f, y in _numpy_batches(records_dir, target, inputs, ids, log_target, 64):
        mids += m
        xs.append(tabular_matrix(f, inputs))
        ys.append(y)
    if not xs:
        return mids, np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
    return mids, np.concatenate(xs), np.concatenate(ys)


def safe_variance(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-feature variances safe to divide by: a feature (near-)constant on the training set
    is scaled by its magnitude instead of by ~0, so an unseen value (e.g. an element absent
    from training, as in leave-one-element-out) cannot blow the input up by ~1e7."""
    scale = np.maximum(1.0, mean**2)
    return np.where(var > 1e-6 * scale, var, scale)


def input_stats(records_dir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                log_target: bool) -> InputStats:
    """Training-set means/variances of the inputs and of the label (one streaming pass)."""

    ds = make_dataset(records_dir, target=target, inputs=inputs, ids=ids, batch_size=128,
                      cache=False, log_target=log_target)
    n, ys = 0, []
    m_sum = m_sq = 0.0
    e_sum = e_sq = e_n = 0.0
    for f, y in ds:
        ys.append(y.numpy().reshape(-1))
        if INPUT_MAGPIE in inputs:
            x = f[INPUT_MAGPIE].numpy().astype(np.float64)
            m_sum, m_sq = m_sum + x.sum(0), m_sq + (x * x).sum(0)
            n += len(x)
        if INPUT_ECD in inputs:
            x = f[INPUT_ECD].numpy().astype(np.float64)
            e_sum, e_sq, e_n = e_sum + x.sum(), e_sq + (x * x).sum(), e_n + x.size
    y = np.concatenate(ys) if ys else np.zeros(1)
    kw: dict[str, Any] = {"y_mean": float(y.mean()), "y_std": float(y.std()) or 1.0}
    if n:
        mean = m_sum / n
        kw.update(magpie_mean=mean.astype(np.float32),
                  magpie_var=safe_variance(mean, m_sq / n - mean**2).astype(np.float32))
    if e_n:
        mean = e_sum / e_n
        kw.update(ecd_mean=float(mean), ecd_var=float(max(e_sq / e_n - mean**2, 1e-12)))
    return InputStats(**kw)


def predict_dataset(model: Any, ds: Any, inputs: tuple[str, ...], tta: str = "none"
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Material ids, true and predicted labels (training-target space) over ``ds``;
    ``tta`` averages each prediction over a ``SymmetryMode`` (``ecdflow.symmetry.tta_predict``,
    the same function the served model calls)."""
    from ecdflow.symmetry import tta_predict

    def _call(x: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(model(x, training=False), np.float64).reshape(-1)

    mids, yt, yp = [], [], []
    for f, y in ds:
        mids += [m.decode() for m in f["material_id"].numpy()]
        yt.append(y.numpy().reshape(-1))
        yp.append(tta_predict(_call, {k: f[k].numpy() for k in inputs}, tta))
    return mids, np.concatenate(yt), np.concatenate(yp)


def predict_test(model: Any, rdir: str, target: str, inputs: tuple[str, ...],
                 test_ids: list[str], tl: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`predict_dataset` over the test ids (batches of ``training.batch_size``, test-time
    averaging ``training.tta``)."""
    ds = make_dataset(rdir, target=target, inputs=inputs, ids=test_ids,
                      batch_size=tl.batch_size, cache=False, log_target=tl.log_target)
    return predict_dataset(model, ds, inputs, getattr(tl, "tta", "none"))


def part_features(ext: Any, rdir: str, target: str, inputs: tuple[str, ...], ids: list[str],
                  ops: list[int], batch_size: int, log_target: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The frozen extractor's output for every material of ``ids`` under every symmetry
    operation of ``ops`` (``ecdflow.symmetry.apply_op`` on the ECD): features
    (n, len(ops), width) float32 and labels (n,) in the training-target space (file order)."""
    from ecdflow.symmetry import apply_op

    ds = make_dataset(rdir, target=target, inputs=inputs, ids=ids, batch_size=batch_size,
                      cache=False, log_target=log_target)
    feats, ys = [], []
    for f, y in ds:
        x = {k: f[k].numpy() for k in inputs}
        per_op = [np.asarray(ext({**x, INPUT_ECD: apply_op(x[INPUT_ECD], k, first_axis=1)},
                                 training=False)) for k in ops]
        feats.append(np.stack(per_op, axis=1))
        ys.append(y.numpy().reshape(-1))
    return np.concatenate(feats).astype(np.float32), np.concatenate(ys)
