"""Fit a model folder's emotion space again, from its own classifier over a training split (uniemo.emotion_space).

The emotion space is the last thing stage 2 writes: per emotion, Gaussians of the classifier's three embeddings
over the training images. Fitting it again needs no training: for instance with ``--components 2``, two
Gaussians per emotion (k-means on the three embeddings), for emotions whose images form separate groups.

Usage:
    python train/emotion_space.py --model runs/joint/final --dataset emoset --data-root /data/EmoSet-118K \\
        --components 2 --out runs/joint/final-k2
    python train/emotion_space.py --model assets/uniemo-tiny --dataset emoshapes \\
        --data-root runs/tiny-world/emoshapes --components 2          # in place

Writes ``emotion_space.safetensors`` into ``--out`` (a copy of ``--model`` made first), or into ``--model`` itself
when ``--out`` is not given.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

logger = logging.getLogger("uniemo.train.emotion_space")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="train/emotion_space.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a UniEmo model folder")
    p.add_argument("--dataset", required=True, help="the dataset the model was trained on (emoset, emoshapes, ...)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="train", help="the split the space is fitted on (default train)")
    p.add_argument("--components", type=int, default=1, help="Gaussians per emotion (1: the paper's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--out", default=None, help="write a copy of the model folder here (default: in place)")
    args = p.parse_args(argv)
    if args.components < 1:
        p.error(f"--components must be >= 1, got {args.components}")
    if not (Path(args.model) / "classifier").is_dir():
        p.error(f"{args.model} is not a UniEmo model folder (no classifier/)")
    if not Path(args.data_root).is_dir():
        p.error(f"--data-root {args.data_root} is not a folder")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # imported after parsing, so that --help and a bad path answer without loading torch
    from accelerate import Accelerator

    from uniemo.classifier import EmoClassifier
    from uniemo.data import build_dataset, build_transform
    from uniemo.training.stage2_outputs import fit_emotion_space

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = Path(args.model)
    out = Path(args.out) if args.out else model
    if out != model:
        if out.exists():
            raise FileExistsError(f"--out {out} exists; choose a new folder")
        shutil.copytree(model, out)
    classifier = EmoClassifier.from_pretrained(model / "classifier").eval()
    arch = classifier.config
    dataset = build_dataset(args.dataset, args.data_root, args.split,
                            build_transform(arch.image_size, False, arch.image_mean, arch.image_std))
    if tuple(dataset.labels) != tuple(arch.emotions):
        raise ValueError(f"the dataset's labels {dataset.labels} differ from the model's {arch.emotions}")
    space = fit_emotion_space(classifier, dataset, Accelerator(), args.batch_size, args.num_workers,
                              args.components)
    space.save(out)
    summary = {"model": str(out), "components": space.num_components, "counts": space.counts.tolist()}
    logger.info("emotion space written to %s: %s", out, summary)
    return summary


if __name__ == "__main__":
    main()
