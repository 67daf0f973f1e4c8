"""The options of the claims table (``uniemo.training.claims.run_claims``, the command line ``train/claims.py``):
the paper's three claims about understanding, each measured over seeds in two data regimes. No torch import here.

The claims, each against a control of the same budget:

- ``queries``: stage 1 with the expert queries against stage 1 without them (same epochs, same head);
- ``implicit``: stage 1 followed by joint stage 2 (all three losses) against stage 1 alone, and against stage 1
  followed by the same stage-2 steps with the generation losses off (L_U only, the same trainable parts);
- ``explicit``: one explicit-feedback round (generate, score, filter, continue stage 2 on real + kept images)
  against the same continuation on real images only.

Regimes: ``low`` keeps ``low_per_class`` labelled training images per emotion (drawn by the seed), where extra
supervision has the most room to help; ``default`` is the whole training split at UniEmo-Tiny's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

REGIMES: tuple[str, ...] = ("low", "default")


@dataclass
class ClaimsConfig:
    data_root: str = ""  # EmoShapes folder (train/tiny_world.py's emoshapes/, or uniemo.data.emoshapes)
    clip: str = "assets/uniemo-tiny/clip"  # the pretrained tiny CLIP every arm starts from
    diffusion: str = "assets/uniemo-tiny/diffusion"  # the frozen tiny Stable Diffusion of stage 2
    out_dir: str = "runs/claims"  # the arms' run folders
    report_dir: str | None = None  # claims.json, claims.md, claims.png; null: out_dir
    readme: str | None = None  # a README whose claims block (uniemo.claims_table.README_START ... END) to rewrite
    seeds: tuple[int, ...] = (1, 2, 3)  # UniEmo-Tiny was built and tuned with seed 0
    regimes: tuple[str, ...] = REGIMES
    low_per_class: int = 20  # labelled training images per emotion in the low regime
    low_stage1_epochs: int = 60  # 160 images: 5 batches of 32 an epoch, 300 steps
    low_stage1_batch_size: int = 32
    default_stage1_epochs: int = 12  # UniEmo-Tiny's stage 1 (4000 images, 744 steps)
    default_stage1_batch_size: int = 64
    probe_epochs: int = 60  # the α probe (and the feedback scorer) of each regime and seed, on its own images
    joint_steps: int = 150  # stage 2 after stage 1 (implicit claim), and its L_U-only control
    joint_batch_size: int = 32
    feedback_per_emotion: int = 16  # candidates per emotion of the feedback round
    feedback_sampler_steps: int = 25
    feedback_proportion: float = 0.2  # the kept images' share of the training set
    continuation_steps: int = 100  # stage-2 steps after the round, with and without the kept images
    # stage 2's settings on top of train/configs/joint_emoshapes.yaml: UniEmo-Tiny's (the UNet stays frozen)
    joint_overrides: tuple[str, ...] = ("optim.lr_mappers=3e-3", "loss.condition=0.001", "object_prompt_fraction=0.5",
                                        "emotion_space_components=2")
    eval_batch_size: int = 128
    resume: bool = True  # keep the arms an earlier run in out_dir finished with the same settings
    threads: int = 2

    def validate(self) -> None:
        unknown = set(self.regimes) - set(REGIMES)
        if unknown or not self.regimes:
            raise ValueError(f"regimes must be among {', '.join(REGIMES)}, got {', '.join(self.regimes) or 'none'}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        for name in ("low_per_class", "low_stage1_epochs", "default_stage1_epochs", "probe_epochs", "joint_steps",
                     "feedback_per_emotion", "continuation_steps", "feedback_sampler_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.feedback_proportion < 1.0:
            raise ValueError(f"feedback_proportion must lie in (0, 1), got {self.feedback_proportion}")
