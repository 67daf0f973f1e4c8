"""One offline round of explicit feedback (paper III-C, Algorithm 1; docs/method.md section 7).

Generate M candidates per emotion, score them (P_emo from the α probe, S_sem from zero-shot CLIP over the
attribute base), keep those inside the [η %, δ %) band of both rankings, and write ``out_dir/manifest.jsonl`` and
``out_dir/feedback.json``. The round itself is ``uniemo.training.feedback_round.run_feedback_round``; this is its
command line.

Continue stage 2 on the mix (generated images are a share p of the training set and feed the understanding
losses only):

    python train/feedback.py --preset tiny model=runs/joint-tiny/final probe=runs/probe-tiny out_dir=runs/fb1
    python train/joint.py --preset tiny model.stage1=runs/joint-tiny/final model.init_fusion=runs/joint-tiny/final \
        model.correlation=runs/joint-tiny/final model.diffusion=runs/joint-tiny/final/diffusion \
        data.root=DATA feedback.manifest=runs/fb1/manifest.jsonl feedback.proportion=0.2 out_dir=runs/joint-fb1

Real path (GPU): ``python train/feedback.py model=runs/joint-emoset-sd15/final probe=runs/probe-emoset-vit-l-14
per_emotion=1000 device=cuda out_dir=runs/feedback-1``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.feedback_round_config import FeedbackRoundConfig

PRESETS = {p.stem.replace("feedback_", ""): p for p in (Path(__file__).parent / "configs").glob("feedback_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run one round; returns the summary (also in feedback.json)."""
    cfg = parse_config(FeedbackRoundConfig, argv, presets=PRESETS, description=__doc__)
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.feedback_round import run_feedback_round

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_feedback_round(cfg)


if __name__ == "__main__":
    main()
