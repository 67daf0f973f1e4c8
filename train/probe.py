"""Train the CLIP emotion probe and build the α table (paper IV-A and Eq. 5, docs/method.md sections 4 and 8).

1. Embed every image of the training (and validation) split with the frozen CLIP image tower: evaluation
   transform (shortest-side resize + center crop to the vision config's image size, CLIP mean/std), no
   augmentation, no gradient, L2-normalised projected embeddings.
2. Train the emotion probe on those embeddings: two fully connected layers (the α probe of paper IV-A), or
   one with ``probe_layers=1`` (the Emo-A scorer of docs/method.md section 8, whose probability of the intended
   emotion is also explicit feedback's P_emo). Train and validation accuracy are reported.
3. With the trained probe, compute p(e | I) for every training image and average it over the images of
   each scene and object attribute: the α table (``uniemo.correlation.build_correlation_table``). The
   attribute names are embedded with the *same* CLIP's text tower, because stage 1's projections W_S / W_O
   map the expert queries into that tower's space and the table is matched there: use the CLIP that the
   classifier was trained with (``model.clip`` of train/understanding.py).

Launch:
    python train/probe.py --preset tiny data.root=/path/to/emoset-layout-data      # CPU smoke run
    python train/probe.py --preset emoset-vit-b-32 data.root=/data/EmoSet-118K     # α for a ViT-B/32 model
    python train/probe.py --preset emoset-vit-l-14 data.root=/data/EmoSet-118K     # α for a ViT-L/14 model
    python train/probe.py --preset emo-a-vit-l-14 data.root=/data/EmoSet-118K      # one-layer Emo-A scorer

Writes to ``out_dir``: ``config.yaml`` (resolved config), ``probe/`` (``EmotionProbe.save_pretrained``:
config.json + model.safetensors; the one-layer scorer when ``probe_layers=1``), ``correlation.safetensors``
+ ``correlation.json`` (the α table; absent when ``build_table=false`` or when the training split carries
no scene or object annotation at all, e.g. FI: a warning says so) and ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.checks import check_probe_inputs
from uniemo.training.probe_config import ProbeConfig

PRESETS = {p.stem.replace("probe_", ""): p for p in (Path(__file__).parent / "configs").glob("probe_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Train the probe, build the α table, write the run folder. Returns the metrics (also metrics.json)."""
    cfg = parse_config(ProbeConfig, argv, presets=PRESETS, description=__doc__, checks=[check_probe_inputs])
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.probe_table import run_probe

    return run_probe(cfg)


if __name__ == "__main__":
    main()
