"""Stage 1: train the expert-query emotion classifier (paper III-A, docs/method.md section 3).

The command line of ``uniemo.training.stage1.run_stage1``; the loop is written out there.

L_U = λ1·L_S + λ2·L_O + λ3·L_Cls: scene / object contrastive losses against the frozen CLIP text tower's
attribute embeddings (computed once, cached) plus cross-entropy on the emotion head. AdamW with its own
learning rate per parameter group, cosine schedule with warmup, model selection on the val split.

Launch:
    python train/understanding.py --preset tiny                       # CPU smoke run (random tiny CLIP)
    python train/understanding.py --preset emoset-vit-b-32 data.root=/data/EmoSet-118K
    accelerate launch --num_processes 4 --mixed_precision bf16 train/understanding.py --preset emoset-vit-l-14 \
        data.root=/data/EmoSet-118K
    torchrun --nproc_per_node 2 train/understanding.py --preset tiny ...   # several CPU processes (gloo)

Writes to ``out_dir``: ``config.yaml`` (resolved config), ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/``
(resumable: ``resume=latest``), ``final/classifier/`` (the best-on-val model), ``final/attributes.json``
+ ``attributes.safetensors`` (the attribute base: names and
their frozen CLIP text embeddings) and ``final/uniemo.json``.
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.checks import check_stage1_inputs
from uniemo.training.stage1_config import UnderstandingConfig

PRESETS = {p.stem.replace("understanding_", ""): p
           for p in (Path(__file__).parent / "configs").glob("understanding_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run stage 1. Returns the final metrics (also written to metrics.jsonl)."""
    cfg = parse_config(UnderstandingConfig, argv, presets=PRESETS, description=__doc__, checks=[check_stage1_inputs])
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.stage1 import run_stage1

    return run_stage1(cfg)


if __name__ == "__main__":
    main()
