"""The fold models of a served ensemble: loading one (Keras, skops, joblib) and running them
all on a batch, the Keras members together in one traced ``tf.function`` per ensemble.

Predictions are in the training-target space (GPa, or log10 GPa with ``log_target``); shapes
(n,) per member, (members, n) for the ensemble.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ecdflow.schema import TABULAR_INPUTS

SKOPS_TRUSTED = ["sklearn.tree._tree.Tree",
                 "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "ecdflow.models.gbm_magpie_volume._exp10"]
"""Types a ``.skops`` member may hold beyond skops' trusted defaults (random forests,
histogram gradient boosting and its log10-target inverse); also what training logs with."""


def save_skops(est: Any, path) -> None:
    """Write a scikit-learn fold model in skops format, LZMA-compressed inside its zip: the
    shipped models' member format (``ecdflow.pretrained``), read by :func:`load_member`; LZMA
    packs tree ensembles tighter than the zip's default DEFLATE."""
    import zipfile

    import skops.io

    skops.io.dump(est, path, compression=zipfile.ZIP_LZMA)


def skops_requirement() -> str:
    """The pip pin (``skops==<installed version>``) a model with ``.skops`` members needs in
    its environment files (``pip_requirements``, ``requirements.txt``, ``conda.yaml``)."""
    import skops

    return f"skops=={skops.__version__}"


def same_state(a: Any, b: Any) -> bool:
    """Whether two fitted scikit-learn models hold the same state: every fitted array (tree
    nodes and leaf values included, NaN equal to NaN) and parameter, walked through
    ``__getstate__`` of the estimators and of their nested objects (trees, predictors). A
    stronger check than predictions on a probe batch, which reaches few leaves."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.names:  # structured (tree nodes): field by field
            return all(same_state(a[n], b[n]) for n in a.dtype.names)
        nan_ok = a.dtype.kind in "fc"
        return bool(np.array_equal(a, b, equal_nan=nan_ok)) if a.dtype.kind != "O" else all(
            same_state(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (str, int, bool, bytes, type(None))) or callable(a) and not hasattr(
            a, "__getstate__"):
        return a == b
    state = getattr(a, "__getstate__", None)
    if state is None:
        return a == b
    return same_state(a.__getstate__(), b.__getstate__())


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
