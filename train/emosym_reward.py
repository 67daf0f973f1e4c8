"""EmoSym step 2, verifiable reinforcement (docs/method.md section 11): starting from step 1's model folder, the
emotion head's probabilities are pushed towards the verifiable reward r = 0.3·1[argmax p = y] + 0.7·p(y), held to
a frozen copy of step 1's model by a KL term whose weight β adapts to the KL (0.05 above 0.5, 0.2 below 0.1, else
0.1), with cross-entropy beside it.

Launch:
    python train/emosym_reward.py --preset emoset-qwen2vl-2b data.root=/data/EmoSet-118K \
        model.init=runs/emosym-compress-2b/final
    python train/emosym_reward.py --preset tiny data.root=/path/to/emoshapes model.init=runs/emosym-compress-tiny/final

Writes to ``out_dir``: ``config.yaml``, ``metrics.jsonl`` (the reward, the KL and β per logged step),
``training_curves.png`` and ``final/`` (the EmoSym model folder of the best validation top-1).
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.emosym_config import EmoSymRewardConfig

PRESETS = {p.stem.replace("emosym_reward_", ""): p
           for p in (Path(__file__).parent / "configs").glob("emosym_reward_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run step 2 and write the run folder; returns the final figures."""
    cfg = parse_config(EmoSymRewardConfig, argv, presets=PRESETS, description=__doc__)
    from uniemo.training.emosym_reward import run_reward

    return run_reward(cfg)


if __name__ == "__main__":
    main()
