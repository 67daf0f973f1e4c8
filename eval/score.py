"""Score a folder written by eval/generate.py: FID, LPIPS, Emo-A, Sem-C, Sem-D (uniemo.generation_scores).

Cheap next to generation, so it can be re-run whenever a metric changes. The definitions follow EmoGen's
evaluation code with its quirks fixed; ``--emogen-compat`` reproduces
the quirks (LPIPS fed [0, 1] images, pair pools leaking across emotions, 10 pairs per emotion, CLIP inputs
rescaled twice for Sem-D) to compare with published numbers, and the output says so.

    fid             torch-fidelity's feature extractor (InceptionV3 pool, 2048-d; images resized to 299²):
                    per emotion against the reference images of that emotion, and aggregated (pooled
                    statistics of all emotions on both sides, the number papers report); in the summary as
                    ``fid_inception``, ``fid_clip`` (--fid-feature-extractor clip) or ``fid_<extractor>``
    lpips           lpips (AlexNet) over seeded random pairs of images of the same emotion, inputs in [-1, 1],
                    mean over the pairs of an emotion, then over emotions
    emo_a           top-1 accuracy of a one-layer probe on CLIP image embeddings (train/probe.py
                    probe_layers=1, --emo-probe) or of EmoGen's Linear(768, 8) head (--emogen-head, on raw
                    CLIP ViT-L/14 features) against the intended emotion
    sem_c           mean over images of the larger top-1 softmax of a Places365 and an ImageNet ResNet-50
                    (--places365-weights and --imagenet-weights); without them the CLIP zero-shot variant,
                    reported as ``semantic_clarity_clip``: the larger top-1 zero-shot probability over the
                    attribute base's scenes and objects (the model's attributes.json, or --attribute-names)
    sem_d           1 − cosine (and the MSE variant, EmoGen's Sem-D column) between CLIP image embeddings of
                    the same pairs as LPIPS

Usage:
    python eval/score.py --generated runs/gen --reference /data/EmoSet-118K/image \\
        --inception-weights weights/weights-inception-2015-12-05-6726825d.pth \\
        --alexnet-weights weights/alexnet-owt-7be5be79.pth --emogen-head weights/emogen_emo_cls.pth \\
        --clip openai/clip-vit-large-patch14 --places365-weights weights/resnet50_places365.pth.tar \\
        --imagenet-weights weights/resnet50-0676ba61.pth
    python eval/score.py --generated runs/gen-tiny --reference-from-dataset emoshapes:data/emoshapes:test \\
        --emo-probe runs/emo-a-tiny --metrics emo_a,sem_c,sem_d
    accelerate launch --num_processes 8 eval/score.py --generated runs/gen --reference /data/EmoSet-118K/image \\
        --inception-weights weights/weights-inception-2015-12-05-6726825d.pth --metrics fid
    accelerate launch --num_processes 2 --cpu eval/score.py --generated runs/gen-tiny --metrics fid \\
        --reference-from-dataset emoshapes:data/emoshapes:test --fid-feature-extractor clip \\
        --clip assets/uniemo-tiny/clip

Under ``accelerate launch`` (or ``torchrun``) the processes share every network's batches (FID features, LPIPS
pairs, CLIP embeddings, the Sem-C ResNets), each on its own GPU (or CPU process); the batches are fixed by
--batch-size, so the numbers are those of one process. The main process alone writes the JSON.

The reference images' FID statistics are cached in --cache-dir (default ``~/.cache/uniemo/fid-reference``), one
file per reference set and extractor (keyed by the files' names, sizes and modification times, the extractor,
its weights, the image size and the device type): a second run against the same reference reads them instead of
extracting the reference again, and says so (``metrics.fid.reference_cache``: ``hit``, ``miss``, or ``off``
with --no-cache). Adding, removing or rewriting a reference image misses the cache.

Offline, the library defaults cannot download: pass the weight files (the AlexNet backbone may also sit in
``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``), or leave a metric out with ``--metrics``. Weight
files given here are opened with ``torch.load(weights_only=True)`` (the Inception file is checked that way
before torch-fidelity opens it).

Writes one JSON (default ``<generated>/scores.json``): ``summary`` (the headline numbers), ``metrics`` (each
metric's details: per emotion, pair counts, which weights), ``protocol`` (``corrected`` or ``emogen-compat`` and
its quirks), ``num_images``, the generation's model and settings (from generation.json), the reference, the
settings of this run, versions and a timestamp.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from uniemo.score_settings import (ALEXNET_FILE, DEVICES, EMOGEN_CLIP, INCEPTION_FILE, KINDS, METRICS,
                                   ScoreSettings)

logger = logging.getLogger("uniemo.eval.score")
DEFAULTS = ScoreSettings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval/score.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", required=True, help="folder written by eval/generate.py")
    parser.add_argument("--out", default=None, help="result JSON (default: <generated>/scores.json)")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {', '.join(METRICS)}")
    parser.add_argument("--kind", default=DEFAULTS.kind, choices=KINDS,
                        help="which manifest images to score (default: the generation set)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the LPIPS / Sem-D pairs")
    parser.add_argument("--pairs", type=int, default=DEFAULTS.pairs,
                        help=f"LPIPS / Sem-D pairs per emotion (default {DEFAULTS.pairs})")
    parser.add_argument("--emogen-compat", action="store_true", help="reproduce EmoGen's evaluation quirks")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--device", default=DEFAULTS.device, choices=DEVICES)
    fid = parser.add_argument_group("FID")
    fid.add_argument("--reference", default=None, help="reference folder: <emotion>/*.jpg|png per emotion")
    fid.add_argument("--reference-from-dataset", default=None, metavar="NAME:ROOT:SPLIT",
                     help="reference images from a dataset split, e.g. emoshapes:data/emoshapes:test")
    fid.add_argument("--inception-weights", default=None, help=f"local {INCEPTION_FILE} (torch-fidelity's)")
    fid.add_argument("--fid-feature-extractor", default=DEFAULTS.fid_feature_extractor,
                     help="a torch-fidelity feature extractor name (tests register a tiny one), or 'clip': "
                          "the Fréchet distance on --clip image embeddings (offline stand-in, reported as such)")
    fid.add_argument("--fid-size", type=int, default=DEFAULTS.fid_size,
                     help=f"images are resized to this square first ({DEFAULTS.fid_size})")
    fid.add_argument("--cache-dir", default=DEFAULTS.cache_dir,
                     help=f"where the reference images' FID statistics are kept (default {DEFAULTS.cache_dir})")
    fid.add_argument("--no-cache", action="store_true",
                     help="extract the reference features again and keep nothing on disk")
    lp = parser.add_argument_group("LPIPS")
    lp.add_argument("--alexnet-weights", default=None, help=f"torchvision's {ALEXNET_FILE}")
    lp.add_argument("--lpips-random-trunk", action="store_true",
                    help="random AlexNet trunk (tests only; the number is labelled as such and is not LPIPS)")
    clip = parser.add_argument_group("CLIP metrics (Emo-A, Sem-C CLIP variant, Sem-D)")
    clip.add_argument("--emo-probe", default=None, help="train/probe.py run folder (probe_layers=1) for Emo-A")
    clip.add_argument("--emogen-head", default=None, help="EmoGen's Emo-A head (.pt/.pth, Linear(768, 8))")
    clip.add_argument("--clip", default=None,
                      help=f"CLIP for Emo-A / Sem-D (Hub id or folder); default: the probe run's, else {EMOGEN_CLIP}")
    semc = parser.add_argument_group("Sem-C")
    semc.add_argument("--places365-weights", default=None, help="resnet50_places365.pth.tar (CSAIL)")
    semc.add_argument("--imagenet-weights", default=None, help="torchvision resnet50-0676ba61.pth (ImageNet V1)")
    semc.add_argument("--attribute-names", default=None,
                      help="attribute base for semantic_clarity_clip: a JSON {scenes, objects} or one name a line "
                           "(default: the model folder's attributes.json)")
    return parser


def settings_from_args(args: argparse.Namespace) -> ScoreSettings:
    """The parsed flags as ``ScoreSettings`` (``--metrics`` split at commas)."""
    values = {f.name: getattr(args, f.name) for f in fields(ScoreSettings)}
    values["metrics"] = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    return ScoreSettings(**values)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Score the folder; returns the result dict (also written to ``--out``)."""
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    settings.validate()  # before torch is imported: a wrong flag answers at once

    from uniemo.distributed import process_state
    from uniemo.generation_scores import score_folder

    state = process_state()  # one process, or one of those of accelerate launch / torchrun
    logging.basicConfig(level=logging.INFO if state.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = score_folder(args.generated, settings)  # every process takes part and gets the same numbers
    out = Path(args.out) if args.out else Path(args.generated) / "scores.json"
    result["settings"]["out"] = args.out
    if state.is_main_process:  # one writer
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out)
        logger.info("scores written to %s: %s", out, result["summary"])
    state.wait_for_everyone()
    return result


if __name__ == "__main__":
    main()
