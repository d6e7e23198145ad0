"""Training throughput (samples/s) of each CNN on CPU at grid 32 and 60, against the tf.data
input pipeline alone in the same run. ``python -m bench.bench_train [--n 1024] [--epochs 2]``;
results in ``bench/results/train.json`` and ``train.md``.

An epoch is ``--n`` synthetic samples. 1,024 is about the size of a real training epoch of the
committed table; with 128 samples both sides measure mostly the per-epoch start-up (iterator,
shuffle buffer, Keras callbacks: tens of ms), which made the Magpie-only ratio look like 1.5x.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from bench import write_results


def input_throughput(rec: str, inputs: tuple[str, ...], epochs: int) -> float:
    """Samples/s of the cached, shuffled tf.data pipeline alone (after one warm-up epoch)."""
    from ecdflow.datasets import keras_dataset

    ds = keras_dataset(rec, "K_VRH", inputs, None, 32, 0, False)
    n = sum(int(y.shape[0]) for _, y in ds)  # warm-up: fills the cache
    t = time.perf_counter()
    for _ in range(epochs):
        for _ in ds:
            pass
    return n * epochs / (time.perf_counter() - t)


def train_throughput(rec: str, name: str, grid: int, epochs: int, n: int) -> float:
    """Samples/s of ``model.fit`` over the same pipeline (after one warm-up epoch)."""
    import keras

    from ecdflow.datasets import keras_dataset
    from ecdflow.models import MODELS

    spec = MODELS[name]
    cfg = spec.config({"width_scale": 0.0625} if name == "cnn2d_se" else {})
    keras.utils.set_random_seed(0)
    m = spec.build(cfg, grid)
    m.compile(optimizer=spec.optimizer(cfg, 4), loss="mae")
    ds = keras_dataset(rec, "K_VRH", spec.inputs, None, 32, 0, False)
    m.fit(ds, epochs=1, verbose=0)
    t = time.perf_counter()
    m.fit(ds, epochs=epochs, verbose=0)
    return n * epochs / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write JSON + Markdown results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024, help="samples per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--grids", default="32,60")
    a = ap.parse_args(argv)
    from ecdflow.records import write_synthetic_records

    rows = []
    for grid in map(int, a.grids.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            write_synthetic_records(tmp, a.n, grid, 0, dtype="float16")
            for name, inputs in (("cnn_magpie", ("magpie",)), ("cnn3d", ("ecd",)),
                                 ("cnn2d_se", ("ecd",)), ("fusion", ("ecd", "magpie"))):
                data = input_throughput(tmp, inputs, a.epochs)
                fit = train_throughput(tmp, name, grid, a.epochs, a.n)
                rows.append({"model": name, "grid": grid, "train_samples_s": round(fit, 1),
                             "input_samples_s": round(data, 1),
                             "input_over_train": round(data / fit, 1)})
                print(rows[-1], flush=True)
    meta = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "n": a.n,
            "epochs": a.epochs, "batch_size": 32, "records_dtype": "float16",
            "note": f"epochs of {a.n} samples; cnn2d_se at width_scale 1/16 (quick "
            "profile); fusion: parts frozen, head trains; tf.data: the cached pipeline "
            "after a warm-up epoch"}
    lines = ["# Training vs input-pipeline throughput (CPU)", "", f"{meta}", "",
             "| model | grid | train samples/s | tf.data samples/s | ratio |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['grid']} | {r['train_samples_s']} | {r['input_samples_s']} "
              f"| {r['input_over_train']} |" for r in rows]
    write_results("train", {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
