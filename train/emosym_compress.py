"""EmoSym step 1, reasoning-knowledge compression (docs/method.md section 11): a Qwen2-VL with the added
``[EMO]`` and ``[CTX]`` tokens and LoRA learns the emotion (cross-entropy on ``[EMO]``) and the rationale
(InfoNCE between ``[CTX]`` and the frozen CLIP text embedding of the image's one-sentence rationale).

Rationales: ``rationales.source=file rationales.file=rationales.jsonl`` (one ``{"image": ..., "rationale": ...}``
per line, e.g. written by a VLM; attribute templates for the images it leaves out), ``attributes`` (templates
from EmoSet's annotations only) or ``emoshapes`` (EmoShapes' rule).

Launch:
    python train/emosym_compress.py --preset emoset-qwen2vl-2b data.root=/data/EmoSet-118K \
        rationales.source=file rationales.file=/data/emoset_rationales.jsonl
    accelerate launch --multi_gpu --num_processes 4 --mixed_precision bf16 train/emosym_compress.py \
        --preset emoset-qwen2vl-2b data.root=/data/EmoSet-118K
    python train/emosym_compress.py --preset tiny data.root=/path/to/emoshapes model.mllm=/path/to/tiny-qwen2vl \
        model.text_encoder=/path/to/tiny-clip                                        # CPU run in the synthetic world

Writes to ``out_dir``: ``config.yaml``, ``metrics.jsonl``, ``training_curves.png`` and ``final/`` (the EmoSym model
folder of the best validation top-1: LoRA adapter and token rows, processor, heads, the rationale base).
"""

from __future__ import annotations

from pathlib import Path

from uniemo.config import parse_config
from uniemo.training.emosym_config import EmoSymCompressConfig

PRESETS = {p.stem.replace("emosym_compress_", ""): p
           for p in (Path(__file__).parent / "configs").glob("emosym_compress_*.yaml")}


def main(argv: list[str] | None = None) -> dict:
    """Run step 1 and write the run folder; returns the final figures."""
    cfg = parse_config(EmoSymCompressConfig, argv, presets=PRESETS, description=__doc__)
    # imported after parsing, so that --help and a bad config answer without loading torch
    from uniemo.training.emosym_compress import run_compress

    return run_compress(cfg)


if __name__ == "__main__":
    main()
