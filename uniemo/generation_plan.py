"""The generation sets of a model, written once to a folder: which image gets which seed, and rendering them.

Every image has a fixed seed, so a set can be regenerated exactly and an interrupted run resumes where it
stopped (existing files are kept unless ``overwrite``):

    seed of image i of emotion e  =  S + 1000 · index(e) + i        (N <= 1000)
    transfer image i of (noun, e) uses the same seed as generate image i of e (same condition, new prompt)
    fusion image i of (a, b, w)   uses seed S + 1000 · index(a) + i (c(b) draws from seed + 1_000_003)

``generate_folder(pipe, out, ...)`` writes (run it under ``accelerate launch`` or ``torchrun`` and the processes
share the pipeline calls; the images are the same whatever their number, and the main process alone writes the
records):

    <emotion>/<emotion>_<i:04d>.png                               the generation set (what FID etc. score)
    transfer/<noun>/<emotion>/<emotion>_<i:04d>.png               with transfer nouns
    fusion/<a>+<b>/w<w>/<a>+<b>_w<w>_<i:04d>.png                  with fusion pairs (w = weight of a)
    manifest.jsonl     one line per image: path (relative to the folder), kind (generate | transfer | fusion),
                       emotion (the intended one; a for fusion), emotions, noun, weight, index, seed, settings
    generation.json    the model (path and its uniemo.json), settings, seed rule, counts, versions, time

Used by eval/generate.py (the command line), train/feedback.py (the candidates of a feedback round) and
eval/tiny_scores.py; each loads the pipeline itself and passes it in.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from PIL import Image

from uniemo.data.feedback import MANIFEST_NAME
from uniemo.distributed import map_chunks, process_state

logger = logging.getLogger(__name__)

SEED_STRIDE = 1000  # seed = S + SEED_STRIDE * emotion index + i
MAX_BATCH_SIZE = 16  # images per pipeline call
GENERATION_NAME = "generation.json"
# Settings that must agree between a run and the folder it resumes into.
PINNED_SETTINGS: tuple[str, ...] = ("seed", "num_inference_steps", "guidance_scale", "scheduler", "size")


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


def complete_image(path: Path) -> bool:
    """True when ``path`` holds a whole image (a resumed run keeps it; a missing or cut-off file is redone)."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def save_atomically(image, path: Path) -> None:
    """Write the PNG beside its place and move it there: a run killed mid-write leaves no cut-off image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    image.save(partial, format="PNG")
    os.replace(partial, path)


def write_text_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


@contextmanager
def folder_lock(folder: Path):
    """An exclusive lock on ``folder``'s records (``fcntl.flock`` on a lock file): runs writing into one folder
    update the manifest one after the other."""
    with open(folder / ".records.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """path -> record of an existing manifest (paths as written, relative to its folder)."""
    if not path.is_file():
        return {}
    return {r["path"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def check_request(per_emotion: int, batch_size: int, pairs: Sequence[tuple[str, str]],
                  weights: Sequence[float]) -> None:
    """The checks that need no model (callers run them before loading one); ``ValueError`` when one fails."""
    if not 1 <= per_emotion <= SEED_STRIDE:
        raise ValueError(f"--per-emotion must lie in 1..{SEED_STRIDE} (seeds of emotions would overlap), "
                         f"got {per_emotion}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"--batch-size must lie in 1..{MAX_BATCH_SIZE}, got {batch_size}")
    if pairs and not weights:
        raise ValueError("--fusion-pairs needs at least one weight in --fusion-weights")
    for w in weights:
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"fusion weights must lie in [0, 1], got {w}")


def _check_emotions(emotions: tuple[str, ...], chosen: Sequence[str], pairs: Sequence[tuple[str, str]]) -> None:
    unknown = [e for e in chosen if e not in emotions]
    if unknown:
        raise ValueError(f"unknown emotion(s) {unknown} in --emotions; the model has {', '.join(emotions)}")
    for name in (name for pair in pairs for name in pair):
        if name not in emotions:
            raise ValueError(f"unknown emotion {name!r} in --fusion-pairs; choose from {', '.join(emotions)}")


def generate_folder(pipe, out: str | Path, model: str, per_emotion: int = 100, seed: int = 0,
                    steps: int | None = None, guidance: float | None = None, scheduler: str | None = None,
                    size: int | None = None, emotions: Sequence[str] | None = None,
                    transfer_nouns: Sequence[str] = (), fusion_pairs: Sequence[tuple[str, str]] = (),
                    fusion_weights: Sequence[float] = (0.0, 0.5, 1.0), batch_size: int = 8,
                    overwrite: bool = False) -> dict[str, Any]:
    """Generate what ``out`` lacks of the sets, one pipeline call per run of consecutive seeds.

    Args:
        pipe: a loaded ``UniEmoPipeline`` (its safety checker, when loaded with one, flags images ``nsfw``).
        out: the folder (created; a folder written with other pinned settings is refused).
        model: how the model was named (a folder or Hub id), recorded in generation.json.
        per_emotion: N images per emotion (1..1000).
        seed: the base seed S.
        steps, guidance, scheduler, size: ``None`` takes the pipeline's defaults (the model's recommended
            setting, else the official one) and its resolution.
        emotions: a subset of the model's emotions (default: all); generated in the model's order.
        transfer_nouns: nouns of the transfer set.
        fusion_pairs, fusion_weights: (a, b) emotion pairs and the weights w of a for the fusion set.
        batch_size: images per pipeline call (1..16).
        overwrite: regenerate images that already exist.

    Returns:
        The content of generation.json.
    """
    t0 = time.time()
    state = process_state()  # one process, or one of those of accelerate launch / torchrun
    model_emotions = tuple(pipe.emotions)
    chosen = list(emotions) if emotions else list(model_emotions)
    check_request(per_emotion, batch_size, fusion_pairs, fusion_weights)
    _check_emotions(model_emotions, chosen, fusion_pairs)
    chosen = [e for e in model_emotions if e in chosen]  # model order
    # Unset sampler options take the pipeline's defaults (the official ones unless the model folder names its own)
    scheduler = scheduler or pipe.defaults["scheduler"]
    pipe.set_scheduler(scheduler)
    settings = {"seed": seed,
                "num_inference_steps": steps if steps is not None else pipe.defaults["num_inference_steps"],
                "guidance_scale": guidance if guidance is not None else pipe.defaults["guidance_scale"],
                "scheduler": scheduler, "size": size or pipe.resolution}

    out = Path(out)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    info_path = out / GENERATION_NAME
    if info_path.is_file():
        previous = json.loads(info_path.read_text())
        clash = {k: (previous["settings"].get(k), settings[k]) for k in PINNED_SETTINGS
                 if previous["settings"].get(k) != settings[k]}
        if clash:
            raise ValueError(f"{out} holds images made with other settings {clash} (before, now); "
                             "use another --out folder")

    # Generate what is missing, one pipeline call per run of consecutive seeds. Under several processes
    # (accelerate launch, torchrun) the calls are shared out whole, so every image is made by the same call
    # whatever the process count; the file listing is taken by every process before any of them writes.
    plan = plan_images(model_emotions, chosen, per_emotion, seed, list(transfer_nouns), list(fusion_pairs),
                       list(fusion_weights))
    todo = [r for r in plan if overwrite or not complete_image(out / r["path"])]
    state.wait_for_everyone()
    logger.info("%d of %d images to generate in %s (%d process(es))", len(todo), len(plan), out, state.num_processes)

    def make(batch: list[dict[str, Any]]) -> dict[str, bool]:
        flagged_here = {}
        for record, image in zip(batch, render(pipe, batch, settings)):
            save_atomically(image, out / record["path"])
            if "nsfw" in image.info:
                flagged_here[record["path"]] = image.info["nsfw"]
        return flagged_here

    flagged: dict[str, bool] = {}  # the safety checker's verdicts on this run's images (when it ran)
    for verdicts in map_chunks(batches_of(todo, batch_size), make, desc="generate", state=state):
        flagged.update(verdicts)

    # One writer: the main process records every image of the plan (and keeps the records of earlier runs into
    # this folder), under a lock, so that separate runs into one folder (one emotion per machine) never lose lines
    if state.is_main_process:
        with folder_lock(out):
            info = _write_records(pipe, out, model, plan, flagged, settings, per_emotion, seed, overwrite,
                                  len(todo), t0, state.num_processes)
    state.wait_for_everyone()
    return info if state.is_main_process else json.loads(info_path.read_text())


def _write_records(pipe, out: Path, model, plan, flagged, settings, per_emotion, seed, overwrite, generated_now,
                   t0, num_processes) -> dict[str, Any]:
    """The manifest (earlier records kept, this plan's replaced) and generation.json; returns the latter."""
    manifest = _read_manifest(out / MANIFEST_NAME)
    image_settings = {k: settings[k] for k in PINNED_SETTINGS if k != "seed"}
    for record in plan:
        previous = manifest.get(record["path"], {})
        manifest[record["path"]] = {**record, "settings": image_settings}
        nsfw = flagged.get(record["path"], None if record["path"] in flagged or overwrite else previous.get("nsfw"))
        if nsfw is not None:
            manifest[record["path"]]["nsfw"] = nsfw
    write_text_atomically(out / MANIFEST_NAME, "".join(json.dumps(r) + "\n" for r in manifest.values()))
    counts: dict[str, int] = {}
    for record in manifest.values():
        counts[record["kind"]] = counts.get(record["kind"], 0) + 1
    model_emotions = tuple(pipe.emotions)
    info = {
        "model": str(model),
        "model_info": {k: v for k, v in pipe.info.items() if k != "path"},
        "emotions": list(model_emotions),
        "settings": settings,
        "per_emotion": per_emotion,
        "seed_rule": f"seed = {seed} + {SEED_STRIDE} * emotion_index + i",
        "transfer_nouns": sorted({r["noun"] for r in manifest.values() if r["kind"] == "transfer"}),
        "fusion_pairs": sorted({"+".join(r["emotions"]) for r in manifest.values() if r["kind"] == "fusion"}),
        "fusion_weights": sorted({r["weight"] for r in manifest.values() if r["kind"] == "fusion"}),
        "counts": counts,
        "safety_checker": getattr(pipe.sd, "safety_checker", None) is not None,
        "flagged_nsfw": sum(bool(r.get("nsfw")) for r in manifest.values()),
        "generated_now": generated_now,
        "device": str(pipe.device),
        "num_processes": num_processes,
        "seconds": round(time.time() - t0, 2),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": version("torch")},
    }
    write_text_atomically(out / GENERATION_NAME, json.dumps(info, indent=2) + "\n")
    logger.info("%d images in %s (%d generated now)", len(manifest), out, generated_now)
    return info
