"""Generate the fixed-seed image sets that eval/score.py measures (METHOD.md section 8; STYLE.md 2.8).

The expensive step, done once: for every emotion of the model, N images from the emotion space; optionally
the same conditions carried onto neutral nouns (transfer) and weighted two-emotion fusions. Every image has
its own fixed seed, so any subset can be regenerated alone and an interrupted run resumes where it stopped
(existing files are kept unless ``--overwrite``):

    seed of image i of emotion e  =  S + 1000 · index(e) + i        (N <= 1000)
    transfer image i of (noun, e) uses the same seed as generate image i of e (same condition, new prompt)
    fusion image i of (a, b, w)   uses seed S + 1000 · index(a) + i (c(b) draws from seed + 1_000_003)

Usage:
    python eval/generate.py --model assets/uniemo-tiny --out runs/gen-tiny --per-emotion 100
    python eval/generate.py --model runs/joint/final --out runs/gen --per-emotion 1000 --device cuda \\
        --transfer-nouns bench,book,cup,lamp,room,sofa,street --fusion-pairs amusement:fear,awe:sadness
    python eval/generate.py ... --emotions awe,fear          # a subset, e.g. one emotion per GPU

Writes to ``--out``:
    <emotion>/<emotion>_<i:04d>.png                               the generation set (what FID etc. score)
    transfer/<noun>/<emotion>/<emotion>_<i:04d>.png               with --transfer-nouns
    fusion/<a>+<b>/w<w>/<a>+<b>_w<w>_<i:04d>.png                  with --fusion-pairs (w = weight of a)
    manifest.jsonl     one line per image: path (relative to --out), kind (generate | transfer | fusion),
                       emotion (the intended one; a for fusion), emotions, noun, weight, index, seed, settings
    generation.json    the model (path and its uniemo.json), settings, seed rule, counts, versions, time
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

logger = logging.getLogger("uniemo.eval.generate")

SCHEDULERS: tuple[str, ...] = ("unipc", "ddim", "dpm++", "euler", "pndm")  # uniemo.pipeline.SCHEDULERS
SEED_STRIDE = 1000  # seed = S + SEED_STRIDE * emotion index + i
MANIFEST_NAME = "manifest.jsonl"
GENERATION_NAME = "generation.json"
# Settings that must agree between a run and the folder it resumes into.
PINNED_SETTINGS: tuple[str, ...] = ("seed", "num_inference_steps", "guidance_scale", "scheduler", "size")


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
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--overwrite", action="store_true", help="regenerate images that already exist")
    parser.add_argument("--safety-checker", action="store_true",
                        help="run Stable Diffusion's safety checker (off by default, as in the authors' evaluation); "
                             "flagged images are marked nsfw in the manifest and left out of eval/score.py")
    return parser


def split_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def parse_pairs(text: str, emotions: tuple[str, ...]) -> list[tuple[str, str]]:
    """``"a:b,c:d"`` -> [(a, b), (c, d)], each name one of ``emotions``."""
    pairs = []
    for item in split_list(text):
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"fusion pair {item!r} is not of the form a:b (e.g. amusement:fear)")
        for name in parts:
            if name not in emotions:
                raise ValueError(f"unknown emotion {name!r} in --fusion-pairs; choose from {', '.join(emotions)}")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_weights(text: str) -> list[float]:
    weights = []
    for item in split_list(text):
        try:
            w = float(item)
        except ValueError:
            raise ValueError(f"fusion weight {item!r} is not a number") from None
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"fusion weights must lie in [0, 1], got {w}")
        weights.append(w)
    return weights


def folder_name(noun: str) -> str:
    """A noun as a folder name: words joined by underscores, nothing but letters, digits, - and _."""
    cleaned = "_".join(noun.split())
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in cleaned)


def plan_images(emotions: tuple[str, ...], chosen: list[str], per_emotion: int, seed: int, nouns: list[str],
                pairs: list[tuple[str, str]], weights: list[float]) -> list[dict[str, Any]]:
    """Every image of the run as a manifest record (without settings), in generation order.

    Args:
        emotions: the model's emotions (their positions fix the seeds).
        chosen: the emotions to generate now (a subset, in model order).
    """
    records = []
    for e in chosen:
        base = seed + SEED_STRIDE * emotions.index(e)
        for i in range(per_emotion):
            records.append({"path": f"{e}/{e}_{i:04d}.png", "kind": "generate", "emotion": e, "emotions": [e],
                            "noun": None, "weight": None, "index": i, "seed": base + i})
    for noun in nouns:
        for e in chosen:
            base = seed + SEED_STRIDE * emotions.index(e)
            for i in range(per_emotion):
                records.append({"path": f"transfer/{folder_name(noun)}/{e}/{e}_{i:04d}.png", "kind": "transfer",
                                "emotion": e, "emotions": [e], "noun": noun, "weight": None, "index": i,
                                "seed": base + i})
    for a, b in pairs:
        if a not in chosen:
            continue  # a fusion set belongs to the run that generates its first emotion
        base = seed + SEED_STRIDE * emotions.index(a)
        for w in weights:
            tag = f"w{w:.2f}"
            for i in range(per_emotion):
                records.append({"path": f"fusion/{a}+{b}/{tag}/{a}+{b}_{tag}_{i:04d}.png", "kind": "fusion",
                                "emotion": a, "emotions": [a, b], "noun": None, "weight": w, "index": i,
                                "seed": base + i})
    return records


def batches_of(records: list[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Runs of records with the same job (kind, emotion, noun, weight) and consecutive seeds, <= batch_size long.

    One pipeline call with ``seed=s`` makes image j with seed ``s + j``, so a run of consecutive seeds is one call.
    """
    out: list[list[dict[str, Any]]] = []
    for record in records:
        last = out[-1][-1] if out else None
        same_job = last is not None and all(last[k] == record[k] for k in ("kind", "emotions", "noun", "weight"))
        if same_job and record["seed"] == last["seed"] + 1 and len(out[-1]) < batch_size:
            out[-1].append(record)
        else:
            out.append([record])
    return out


def render(pipe, batch: list[dict[str, Any]], settings: dict[str, Any]) -> list:
    """One pipeline call for a batch from ``batches_of``."""
    first = batch[0]
    common = dict(num_images=len(batch), seed=first["seed"], num_inference_steps=settings["num_inference_steps"],
                  guidance_scale=settings["guidance_scale"], size=settings["size"])
    if first["kind"] == "generate":
        return pipe.generate(first["emotion"], **common)
    if first["kind"] == "transfer":
        return pipe.transfer(first["emotion"], first["noun"], **common)
    a, b = first["emotions"]
    return pipe.fuse(a, b, weight=first["weight"], **common)


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {r["path"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Generate the sets; returns the content of generation.json."""
    args = build_parser().parse_args(argv)
    if not 1 <= args.per_emotion <= SEED_STRIDE:
        raise ValueError(f"--per-emotion must lie in 1..{SEED_STRIDE} (seeds of emotions would overlap), "
                         f"got {args.per_emotion}")
    if not 1 <= args.batch_size <= 16:
        raise ValueError(f"--batch-size must lie in 1..16, got {args.batch_size}")
    nouns = split_list(args.transfer_nouns)
    weights = parse_weights(args.fusion_weights)

    import torch
    from tqdm.auto import tqdm

    from uniemo import UniEmoPipeline

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    pipe = UniEmoPipeline.from_pretrained(args.model, device=device, safety_checker=args.safety_checker)
    # Unset sampler flags take the pipeline's defaults (the official ones unless the model folder names its own)
    scheduler = args.scheduler or pipe.defaults["scheduler"]
    pipe.set_scheduler(scheduler)
    emotions = tuple(pipe.emotions)
    chosen = split_list(args.emotions) or list(emotions)
    unknown = [e for e in chosen if e not in emotions]
    if unknown:
        raise ValueError(f"unknown emotion(s) {unknown} in --emotions; the model has {', '.join(emotions)}")
    chosen = [e for e in emotions if e in chosen]  # model order
    pairs = parse_pairs(args.fusion_pairs, emotions)
    if pairs and not weights:
        raise ValueError("--fusion-pairs needs at least one weight in --fusion-weights")
    settings = {"seed": args.seed,
                "num_inference_steps": args.steps if args.steps is not None else pipe.defaults["num_inference_steps"],
                "guidance_scale": args.guidance if args.guidance is not None else pipe.defaults["guidance_scale"],
                "scheduler": scheduler, "size": args.size or pipe.resolution}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / GENERATION_NAME
    if info_path.is_file():
        previous = json.loads(info_path.read_text())
        clash = {k: (previous["settings"].get(k), settings[k]) for k in PINNED_SETTINGS
                 if previous["settings"].get(k) != settings[k]}
        if clash:
            raise ValueError(f"{out} holds images made with other settings {clash} (before, now); "
                             "use another --out folder")

    # Generate what is missing, one pipeline call per run of consecutive seeds
    plan = plan_images(emotions, chosen, args.per_emotion, args.seed, nouns, pairs, weights)
    todo = [r for r in plan if args.overwrite or not (out / r["path"]).is_file()]
    progress = tqdm(total=len(plan), initial=len(plan) - len(todo), desc="generate", unit="img")
    flagged: dict[str, bool] = {}  # the safety checker's verdicts on this run's images (when it ran)
    for batch in batches_of(todo, args.batch_size):
        for record, image in zip(batch, render(pipe, batch, settings)):
            path = out / record["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            if "nsfw" in image.info:
                flagged[record["path"]] = image.info["nsfw"]
        progress.update(len(batch))
    progress.close()

    # Manifest: the images of earlier runs into this folder (other --emotions) plus this run's, in plan order
    manifest = _read_manifest(out / MANIFEST_NAME)
    image_settings = {k: settings[k] for k in PINNED_SETTINGS if k != "seed"}
    for record in plan:
        previous = manifest.get(record["path"], {})
        manifest[record["path"]] = {**record, "settings": image_settings}
        nsfw = flagged.get(record["path"], None if record["path"] in flagged or args.overwrite else previous.get("nsfw"))
        if nsfw is not None:
            manifest[record["path"]]["nsfw"] = nsfw
    (out / MANIFEST_NAME).write_text("".join(json.dumps(r) + "\n" for r in manifest.values()))
    counts: dict[str, int] = {}
    for record in manifest.values():
        counts[record["kind"]] = counts.get(record["kind"], 0) + 1
    info = {
        "model": str(args.model),
        "model_info": {k: v for k, v in pipe.info.items() if k != "path"},
        "emotions": list(emotions),
        "settings": settings,
        "per_emotion": args.per_emotion,
        "seed_rule": f"seed = {args.seed} + {SEED_STRIDE} * emotion_index + i",
        "transfer_nouns": sorted({r["noun"] for r in manifest.values() if r["kind"] == "transfer"}),
        "fusion_pairs": sorted({"+".join(r["emotions"]) for r in manifest.values() if r["kind"] == "fusion"}),
        "fusion_weights": sorted({r["weight"] for r in manifest.values() if r["kind"] == "fusion"}),
        "counts": counts,
        "safety_checker": args.safety_checker,
        "flagged_nsfw": sum(bool(r.get("nsfw")) for r in manifest.values()),
        "generated_now": len(todo),
        "device": device,
        "seconds": round(time.time() - t0, 2),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    logger.info("%d images in %s (%d generated now)", len(manifest), out, len(todo))
    return info


if __name__ == "__main__":
    main()
