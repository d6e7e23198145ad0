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
