"""Stage 2: joint training of understanding and emotion-conditioned generation (paper III-B, docs/method.md sections 5-6).

The command line of ``uniemo.training.joint.run_joint``; the loop is written out there.

Per step (``joint_step``): the classifier encodes the image (L_U: emotion CE + scene/object contrastive);
α_Scene and α_Object are looked up at the ground-truth emotion for the attributes nearest to the pooled
queries; the mappers fuse cls/scene/object embeds into the condition c (Eq. 6); the condition head gives
L_cond (Eq. 7); c replaces the placeholder token's embedding per sample (``encode_condition``) and the frozen
UNet's ε-prediction MSE on the VAE latents gives L_diff (Eq. 8). L = γ1·L_U + γ2·L_cond + γ3·L_diff.

Trained by default: queries, Interactive Blocks, mappers, condition head, contrastive projections. Frozen with
``requires_grad_(False)`` (no gradient memory): UNet, VAE, diffusion text encoder, CLIP backbone, emotion head.
Each group is a switch (``model.train_*``). At the end the emotion space is fitted on the training split
(evaluation transform, gathered over processes) and the model folder of docs/model-folder.md is written.

Launch:
    python train/joint.py --preset tiny model.stage1=RUN1/final model.diffusion=SD_DIR data.root=DATA
    accelerate launch --num_processes 4 --mixed_precision fp16 train/joint.py --preset emoset-sd15 \
        data.root=/data/EmoSet-118K        # the preset reads runs/emoset-vit-l-14/final and runs/probe-emoset-vit-l-14
    torchrun --nproc_per_node 2 train/joint.py --preset tiny ...        # several CPU processes (gloo)

Explicit feedback (docs/method.md section 7): ``feedback.manifest=runs/fb/manifest.jsonl`` (train/feedback.py) mixes
the kept generated images into the training set at ``feedback.proportion`` p (0.2); with ``model.stage1``,
``model.init_fusion`` and ``model.correlation`` all set to the previous model folder, stage 2 continues from it.
The online memory bank (EmoSym): ``memory_bank.enabled=true``; every ``memory_bank.every`` steps the current
model generates ``memory_bank.per_emotion`` images per emotion (conditions sampled from an emotion space fitted
on a few training images with the current encoder), the filter of Algorithm 1 keeps some, and the bank takes
the slots of the real samples the classifier is most confident about (``uniemo.memory_bank``). Generated images
(records with ``generated`` true) feed the understanding losses only: ``joint_step`` leaves them out of L_cond
and L_diff.

Writes to ``out_dir``: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/`` (``resume=latest``),
``validation/step-<step>.png`` (a fixed-seed grid per emotion), ``memory_bank/`` (with the bank: the images of
each update, their scores, ``state.json``) and ``final/`` (the UniEmo model folder).
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.checks import check_joint_inputs
from uniemo.training.joint_config import JointConfig

PRESETS = {p.stem.replace("joint_", ""): p for p in (Path(__file__).parent / "configs").glob("joint_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run stage 2 and fit the emotion space. Returns a summary (also in metrics.jsonl)."""
    cfg = parse_config(JointConfig, argv, presets=PRESETS, description=__doc__, checks=[check_joint_inputs])
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.joint import run_joint

    return run_joint(cfg)


if __name__ == "__main__":
    main()
