"""Generate the fixed-seed image sets that eval/score.py measures (uniemo.generation_plan).

The expensive step, done once: for every emotion of the model, N images from the emotion space; optionally
the same conditions carried onto neutral nouns (transfer) and weighted two-emotion fusions. Every image has
its own fixed seed, so any subset can be regenerated alone and an interrupted run resumes where it stopped
(existing files are kept unless ``--overwrite``):

    seed of image i of emotion e  =  S + 1000 · index(e) + i        (N <= 1000)
    transfer image i of (noun, e) uses the same seed as generate image i of e (same condition, new prompt)
    fusion image i of (a, b, w)   uses seed S + 1000 · index(a) + i (c(b) draws from seed + 1_000_003)

Usage:
    python eval/generate.py --model assets/uniemo-tiny --out runs/gen-tiny --per-emotion 100
    python eval/generate.py --model runs/joint/final --out runs/gen --per-emotion 1000 --device cuda --dtype fp16 \\
        --transfer-nouns bench,book,cup,lamp,room,sofa,street --fusion-pairs amusement:fear,awe:sadness
    accelerate launch --num_processes 8 eval/generate.py --model runs/joint/final --out runs/gen --dtype fp16
    accelerate launch --num_processes 2 --cpu eval/generate.py --model assets/uniemo-tiny --out runs/gen-tiny
    python eval/generate.py ... --emotions awe,fear          # a subset

Under ``accelerate launch`` (or ``torchrun``) the processes share the pipeline calls, each on its own device
(``--device`` is then ignored), and write the same images, seeds and manifest as one process would; a killed
run, started again with the same command, makes only the images it lacks.

Writes to ``--out``:
    <emotion>/<emotion>_<i:04d>.png                               the generation set (what FID etc. score)
    transfer/<noun>/<emotion>/<emotion>_<i:04d>.png               with --transfer-nouns
    fusion/<a>+<b>/w<w>/<a>+<b>_w<w>_<i:04d>.png                  with --fusion-pairs (w = weight of a)
    manifest.jsonl     one line per image: path (relative to --out), kind (generate | transfer | fusion),
                       emotion (the intended one; a for fusion), emotions, noun, weight, index, seed, settings
    generation.json    the model (path and its uniemo.json), settings, seed rule, counts, versions, time
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger("uniemo.eval.generate")

SCHEDULERS: tuple[str, ...] = ("unipc", "ddim", "dpm++", "euler", "pndm")  # uniemo.pipeline.SCHEDULERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval/generate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="UniEmo model folder (or Hub repo id)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--per-emotion", type=int, default=100, help="images per emotion, N (<= 1000; default 100)")
    parser.add_argument("--seed", type=int, default=0, help="base seed S (default 0)")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampler steps (default: the model's recommended setting, else the official 50)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale (default: the model's, else the official 7.5)")
    parser.add_argument("--scheduler", default=None, choices=SCHEDULERS,
                        help="sampler (default: the model's, else the official unipc)")
    parser.add_argument("--size", type=int, default=None, help="image size (default: the model's resolution)")
    parser.add_argument("--emotions", default=None, help="comma-separated subset of the model's emotions")
    parser.add_argument("--transfer-nouns", default="", help="comma-separated nouns for the transfer set")
    parser.add_argument("--fusion-pairs", default="", help="comma-separated a:b emotion pairs for the fusion set")
    parser.add_argument("--fusion-weights", default="0,0.5,1", help="weights w of emotion a (default 0,0.5,1)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per pipeline call (1-16)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="one process: where to run (several processes: each its own device)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"),
                        help="weights and activations (default fp32; fp16 or bf16 on a GPU)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate images that already exist")
    parser.add_argument("--safety-checker", action="store_true",
                        help="run Stable Diffusion's safety checker (off by default, as in the authors' evaluation); "
                             "flagged images are marked nsfw in the manifest and left out of eval/score.py")
    return parser


def split_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"a:b,c:d"`` -> [(a, b), (c, d)] (the names are checked against the model's emotions later)."""
    pairs = []
    for item in split_list(text):
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"fusion pair {item!r} is not of the form a:b (e.g. amusement:fear)")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_weights(text: str) -> list[float]:
    weights = []
    for item in split_list(text):
        try:
            weights.append(float(item))
        except ValueError:
            raise ValueError(f"fusion weight {item!r} is not a number") from None
    return weights


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Generate the sets; returns the content of generation.json."""
    args = build_parser().parse_args(argv)
    pairs, weights = parse_pairs(args.fusion_pairs), parse_weights(args.fusion_weights)

    from uniemo.distributed import process_state
    from uniemo.generation_plan import check_request, generate_folder
    from uniemo.pipeline import UniEmoPipeline

    check_request(args.per_emotion, args.batch_size, pairs, weights)  # before the model loads
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = process_state()  # several processes: each on its own device (cuda:<local rank>, or the CPU)
    device = state.device if state.num_processes > 1 else args.device
    pipe = UniEmoPipeline.from_pretrained(args.model, device=device, dtype=args.dtype,
                                          safety_checker=args.safety_checker)
    try:
        return generate_folder(pipe, args.out, model=args.model, per_emotion=args.per_emotion, seed=args.seed,
                               steps=args.steps, guidance=args.guidance, scheduler=args.scheduler, size=args.size,
                               emotions=split_list(args.emotions), transfer_nouns=split_list(args.transfer_nouns),
                               fusion_pairs=pairs, fusion_weights=weights, batch_size=args.batch_size,
                               overwrite=args.overwrite)
    finally:
        if state.num_processes > 1:
            # close the process group before the interpreter exits: left to exit, gloo's threads can be torn down
            # while still running ("terminate called without an active exception", exit code -6 under load)
            state.destroy_process_group()


if __name__ == "__main__":
    main()
