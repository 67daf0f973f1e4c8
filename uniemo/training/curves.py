"""The training-curve figure every run writes at its end: the logged loss terms and the validation metrics against
the optimizer step, read back from the run's ``metrics.jsonl``.

Drawn on a bare ``matplotlib.figure.Figure`` (no pyplot): no backend, no window, nothing left open.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

CURVES_FILE = "training_curves.png"


def read_series(metrics_file: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """``name -> (steps, values)`` for every numeric key of the step records (``train/...``, ``val/...``, ``lr``)
    of a ``metrics.jsonl``; the summary records (``final``, ``memory_bank``) are skipped."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for line in Path(metrics_file).read_text().splitlines():
        record = json.loads(line)
        if "step" not in record:
            continue
        for key, value in record.items():
            if key.startswith(("train/", "val/")) or key == "lr":
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(int(record["step"]))
                    values.append(float(value))
    return series


def plot_training_curves(metrics_file: str | Path, path: str | Path, title: str = "") -> Path | None:
    """One panel of the training losses (and, when logged, one of the validation metrics and one of the learning
    rate) against the step, as a PNG at ``path``. Returns ``path``, or ``None`` when the log holds no step yet."""
    series = read_series(metrics_file)
    panels = [[k for k in sorted(series) if k.startswith("train/")],
              [k for k in sorted(series) if k.startswith("val/")],
              [k for k in series if k == "lr"]]
    panels = [keys for keys in panels if keys]
    if not panels:
        return None
    figure = Figure(figsize=(5.0 * len(panels), 3.6), layout="constrained")
    for ax, keys in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for key in keys:
            steps, values = series[key]
            ax.plot(steps, values, marker="o" if len(steps) < 3 else None, label=key.split("/", 1)[-1])
        ax.set_xlabel("optimizer step")
        ax.set_title({"train": "training loss", "val": "validation", "lr": "learning rate"}[keys[0].split("/")[0]])
        if len(keys) > 1:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
