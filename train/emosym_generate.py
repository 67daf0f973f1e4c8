"""EmoSym step 3, reasoning-augmented generation (docs/method.md section 11): from step 2's (or step 1's) model
folder, two mappers take the ``[EMO]`` and ``[CTX]`` hidden states into Stable Diffusion's token space, where
their sum replaces the placeholder token; they learn from the frozen SD's denoising loss (with cross-entropy on
the emotion head beside it). The per-emotion Gaussians over the two features (the emotion space) are fitted at
the end.

Launch:
    python train/emosym_generate.py --preset emoset-sd15 data.root=/data/EmoSet-118K \
        model.init=runs/emosym-reward-2b/final
    python train/emosym_generate.py --preset tiny data.root=/path/to/emoshapes \
        model.init=runs/emosym-reward-tiny/final diffusion=/path/to/tiny-sd

Writes to ``out_dir``: ``config.yaml``, ``metrics.jsonl``, ``training_curves.png`` and ``final/`` (the EmoSym model
folder with ``mappers/`` and ``emotion_space.safetensors``, which ``uniemo.emosym.pipeline.EmoSymPipeline``
loads).
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.emosym_config import EmoSymGenerateConfig

PRESETS = {p.stem.replace("emosym_generate_", ""): p
           for p in (Path(__file__).parent / "configs").glob("emosym_generate_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run step 3 and write the run folder; returns the final figures."""
    cfg = parse_config(EmoSymGenerateConfig, argv, presets=PRESETS, description=__doc__)
    from uniemo.training.emosym_generate import run_generate

    return run_generate(cfg)


if __name__ == "__main__":
    main()
