"""Figures of a training run (matplotlib, Agg backend): parity plot and learning curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def parity_plot(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path, title: str = "",
                unit: str = "GPa", metrics_label: str = "") -> Path:
    """Predicted vs true moduli (``unit``) with the y = x line and R2/RMSE of these points in
    the legend, prefixed by ``metrics_label`` (e.g. "pooled" when the points pool several
    folds, whose fold-mean metrics differ)."""
    plt = _pyplot()
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2))) if len(y_true) else float("nan")
    ss = float(np.sum((y_true - y_true.mean()) ** 2)) if len(y_true) else 0.0
    r2 = 1 - float(np.sum((y_true - y_pred) ** 2)) / ss if ss > 0 else float("nan")
    lo = float(min(y_true.min(), y_pred.min(), 0.0)) if len(y_true) else 0.0
    hi = float(max(y_true.max(), y_pred.max())) if len(y_true) else 1.0
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    prefix = f"{metrics_label} " if metrics_label else ""
    ax.scatter(y_true, y_pred, s=8, alpha=0.6,
               label=f"{prefix}R2 {r2:.3f}, RMSE {rmse:.2f} {unit} (n = {len(y_true)})")
    ax.set(xlabel=f"true ({unit})", ylabel=f"predicted ({unit})", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def learning_curve(history: dict[str, list[float]], path: str | Path, title: str = "",
                   resumed_at: int | None = None) -> Path:
    """Training and validation loss per epoch (loss in training-target units); a dashed line
    marks the epoch a resumed run restarted from."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for key in ("loss", "val_loss"):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], label=key)
    if resumed_at:
        ax.axvline(resumed_at + 0.5, ls="--", color="grey", lw=1, label="resumed")
    ax.set(xlabel="epoch", ylabel="MAE loss", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def heatmap(values, path: str | Path, title: str = "", label: str = "",
            fmt: str = "{:.2f}", higher_is_better: bool = False) -> Path:
    """A table of numbers (``pandas.DataFrame``: rows x columns, NaN for a missing cell, drawn
    blank) as a coloured grid with each value written in its cell; ``label`` names the
    colour scale, on which the better end (``higher_is_better``) is the light one."""
    plt = _pyplot()
    arr = np.asarray(values.to_numpy(), float)
    n_rows, n_cols = arr.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.95 * n_cols, 0.9 + 0.38 * n_rows), dpi=100)
    cmap = "viridis" if higher_is_better else "viridis_r"
    im = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in values.columns], rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(n_rows), [str(i) for i in values.index], fontsize=8)
    finite = arr[np.isfinite(arr)]
    mid = float(np.median(finite)) if finite.size else 0.0
    for i in range(n_rows):
        for j in range(n_cols):
            if np.isfinite(arr[i, j]):
                ax.text(j, i, fmt.format(arr[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if (arr[i, j] < mid) == higher_is_better else "black")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
