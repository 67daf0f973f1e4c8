"""The paper's three claims about understanding, measured on EmoShapes over seeds: the table and its figure.

Each claim against a control of the same budget, in two regimes (``uniemo.training.claims_config``):

- expert queries: stage 1 with them against stage 1 without them;
- implicit feedback: stage 1 + joint stage 2 against stage 1 alone, and against the same stage-2 steps with
  the generation losses off;
- explicit feedback: one feedback round, then stage 2 continued on real + kept images, against the same
  continuation on real images only.

Every arm starts from the pretrained tiny CLIP and tiny SD of UniEmo-Tiny (``clip=``, ``diffusion=``) and the
recipes' EmoShapes presets (``train/configs``). Writes the arms to ``out_dir/<regime>/seed<S>/`` (resumable: a
rerun keeps the arms already finished with the same settings) and ``claims.json``, ``claims.md`` and
``claims.png`` to ``report_dir`` (default: ``out_dir``), updated after every seed.

    python -m train.claims data_root=runs/tiny-world/emoshapes report_dir=docs/claims
    python -m train.claims data_root=DATA regimes=[low] seeds=[1,2,3,4,5]

Runtime on 2 CPU cores: about 4 minutes per seed in the low regime and 13 in the default one (3 seeds of
both: about 50 minutes).
"""

from __future__ import annotations

import logging
from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.claims_config import ClaimsConfig

CONFIGS = Path(__file__).parent / "configs"
PRESETS = {"stage1": CONFIGS / "understanding_emoshapes.yaml", "probe": CONFIGS / "probe_tiny.yaml",
           "joint": CONFIGS / "joint_emoshapes.yaml"}


def main(argv: list[str] | None = None) -> dict:
    """Run (or resume) every arm and write the table; returns the content of claims.json."""
    cfg = parse_config(ClaimsConfig, argv, description=__doc__)
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.claims import run_claims

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_claims(cfg, PRESETS)


if __name__ == "__main__":
    main()
