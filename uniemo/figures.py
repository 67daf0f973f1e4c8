"""The PNG figures the evaluation scripts write: a confusion matrix and a grid of real and generated images.

Drawn on a bare ``matplotlib.figure.Figure`` (no pyplot): nothing depends on the backend, no window opens, and
no figure outlives its function. ``eval/understanding.py`` writes the confusion matrix next to its JSON,
``eval/tiny_report.py`` the README figure of UniEmo-Tiny.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure
from PIL import Image

from uniemo.metrics import normalize_confusion


def plot_confusion_matrix(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                          title: str) -> Path:
    """Row-normalised confusion matrix as a PNG: colour = fraction of the true class, text = counts.

    Args:
        cm: (C, C) counts, row = true class, column = predicted class.
        labels: the C class names.
        path: the PNG to write (parent folders are created).
        title: the figure title.

    Returns:
        ``path``.
    """
    counts = torch.as_tensor(cm, dtype=torch.long)
    fractions = normalize_confusion(counts)
    C = len(labels)
    side = max(3.5, 0.55 * C + 2.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    image = ax.imshow(fractions.numpy(), cmap=matplotlib.colormaps["Blues"], vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(C), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(C), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(C):
        for j in range(C):
            # white text on dark cells so the count stays readable
            colour = "white" if fractions[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path


def real_and_generated_grid(path: str | Path, real: Mapping[str, Sequence[Image.Image]],
                            generated: Mapping[str, Sequence[Image.Image]], emotions: Sequence[str],
                            per_row_kind: int = 3, real_label: str = "EmoShapes",
                            generated_label: str = "UniEmo-Tiny") -> Path:
    """One column per emotion: ``per_row_kind`` real images on top, as many generated ones below (96 px each).

    Args:
        path: the PNG to write.
        real, generated: images per emotion name (the first ``per_row_kind`` of each are drawn).
        emotions: the column order.
        real_label, generated_label: the row labels of the first column.

    Returns:
        ``path``.
    """
    rows = 2 * per_row_kind
    fig = Figure(figsize=(len(emotions) * 1.3, rows * 1.35))
    axes = fig.subplots(rows, len(emotions), squeeze=False)
    for c, e in enumerate(emotions):
        column = list(real[e][:per_row_kind]) + list(generated[e][:per_row_kind])
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(column[r].resize((96, 96)))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(e, fontsize=8)
            if c == 0:
                ax.set_ylabel(real_label if r < per_row_kind else generated_label, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
