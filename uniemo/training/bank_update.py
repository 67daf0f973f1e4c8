"""One update of the online memory bank during stage 2 (EmoSym): generate with the model as it is now, keep
what the filter of Algorithm 1 keeps, and give the kept images the slots of the real samples the classifier is
most confident about (``uniemo.memory_bank``).

Every process takes part: the feature pass of the quick emotion space, the generation, the scoring of the new
images and the confidences of the real samples are cut into fixed chunks shared out over the processes
(``uniemo.distributed.map_chunks``) and gathered back, so every process ends with the same bank, the same bank a
single process would build (each chunk is one model call, whoever makes it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from uniemo.data import collate_records
from uniemo.data.base import ImageEntry
from uniemo.distributed import chunked, map_chunks
from uniemo.emotion_space import EmotionSpace
from uniemo.filtering import select_feedback
from uniemo.memory_bank import confidence_pool
from uniemo.pipeline import UniEmoPipeline

GENERATION_CHUNK = 16  # images per pipeline call


@torch.no_grad()
def quick_emotion_space(classifier, dataset, per_emotion: int, batch_size: int, device, seed: int):
    """An emotion space from ``per_emotion`` random training images of each emotion (current encoder, eval mode).

    The memory bank generates from the model as it is now; refitting on the whole split at every update would
    cost a full pass, while a few dozen images per emotion already place each Gaussian.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([entry.label for entry in dataset.entries])
    chosen = []
    for e in range(len(dataset.labels)):
        members = torch.nonzero(labels == e).flatten()
        chosen += members[torch.randperm(len(members), generator=g)[:per_emotion]].tolist()

    def features(indices):
        batch = collate_records([dataset[i] for i in indices])
        if batch is None:
            return None
        f = classifier.forward_features(batch["pixel_values"].to(device))
        return [t.float().cpu() for t in (f.cls_embed, f.scene_embed, f.object_embed)], batch["labels"]

    was_training = classifier.training
    classifier.eval()
    parts = [r for r in map_chunks(chunked(chosen, batch_size), features, "bank: emotion space") if r is not None]
    classifier.train(was_training)
    feats = {key: torch.cat([embeds[k] for embeds, _ in parts]) for k, key in enumerate(("cls", "scene", "object"))}
    return EmotionSpace.fit(feats, torch.cat([labels for _, labels in parts]), tuple(classifier.config.emotions))


@torch.no_grad()
def real_confidences(classifier, dataset, indices: list[int], batch_size: int, device, kind: str):
    """The classifier's confidence on the *real* samples ``indices`` (eval transform): p(true label) or max p.

    Returns:
        (N,) float64 numpy array over the whole dataset, NaN where a sample was not scored.
    """
    def confidences(chunk):
        batch = collate_records([dataset[i] for i in chunk])
        if batch is None:
            return None
        probs = classifier(batch["pixel_values"].to(device)).logits.float().softmax(dim=-1).cpu()
        conf = (probs.gather(1, batch["labels"][:, None]).squeeze(1) if kind == "label"
                else probs.max(dim=-1).values)
        return batch["index"].numpy(), conf.double().numpy()

    out = np.full(len(dataset), np.nan)
    was_training = classifier.training
    classifier.eval()
    for result in map_chunks(chunked(indices, batch_size), confidences, "bank: real confidences"):
        if result is not None:
            out[result[0]] = result[1]
    classifier.train(was_training)
    return out


def generation_jobs(emotions, per_emotion: int) -> list[tuple[int, int, int]]:
    """The update's images as pipeline calls ``(emotion index, first image, count)``; image i of emotion e has its
    own seed (its row of the emotion space and its noise), so it is the same image whatever the process count."""
    return [(e, start, min(GENERATION_CHUNK, per_emotion - start))
            for e in range(len(emotions)) for start in range(0, per_emotion, GENERATION_CHUNK)]


def update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer, space_set,
                       cfg, step: int, device, bank_dir: Path, is_main_process: bool = True) -> dict:
    """One bank update, called by every process: generate M per emotion, score and filter them (Alg. 1), score the
    real samples, swap. ``bank`` ends the same on every process.

    Returns:
        A log record; the main process also writes the candidates' scores and the bank's state under
        ``bank_dir``.
    """
    mb = cfg.memory_bank
    t0 = time.time()
    inner = getattr(joint, "module", joint)
    emotions = tuple(inner.classifier.config.emotions)
    out = bank_dir / f"step-{step:06d}"
    round_seed = cfg.seed * 100_003 + step
    # Conditions from the model as it is now: a quick emotion space, then the stock inference path
    space = quick_emotion_space(inner.classifier, space_set, mb.space_per_emotion, cfg.space_batch_size, device,
                                seed=round_seed)
    saved_scheduler = pipe.scheduler
    try:
        generator = UniEmoPipeline(inner.classifier, inner.fusion, space, attributes, pipe, placeholder_id,
                                   correlation, resolution=cfg.resolution).to(device)
        generator.set_scheduler(mb.scheduler)

        def generate_and_score(job):
            e, start, count = job
            emotion = emotions[e]
            (out / emotion).mkdir(parents=True, exist_ok=True)
            images = generator.generate(emotion, num_images=count, seed=round_seed * 100_000 + 1000 * e + start,
                                        num_inference_steps=mb.steps, guidance_scale=mb.guidance)
            paths = []
            for i, image in enumerate(images, start=start):
                path = out / emotion / f"{emotion}_{i:04d}.png"
                image.save(path)
                paths.append(str(path))
            scores = scorer.feedback_scores(paths, [e] * count)
            return paths, [e] * count, scores["emotion_score"].tolist(), scores["semantic_score"].tolist()

        done = map_chunks(generation_jobs(emotions, mb.per_emotion), generate_and_score,
                          "bank: generate and score")
    finally:
        # UniEmoPipeline switched the shared SD pipeline's sampler and put the modules in eval mode
        pipe.scheduler = saved_scheduler
        joint.train()
    paths = [p for d in done for p in d[0]]
    intended = [e for d in done for e in d[1]]
    emotion_score = torch.tensor([s for d in done for s in d[2]], dtype=torch.float64)
    semantic_score = torch.tensor([s for d in done for s in d[3]], dtype=torch.float64)

    # Algorithm 1 on the new images, bands within each emotion
    kept = select_feedback(emotion_score, semantic_score, mb.eta, mb.delta, groups=intended)
    items = [ImageEntry(path=paths[i], label=intended[i]) for i in kept]

    # The real samples' confidence, from the real images (EmoSym's code scored the generated ones here)
    pool = confidence_pool(bank.num_real, mb.confidence_pool, round_seed)
    confidences = real_confidences(inner.classifier, space_set, pool, cfg.space_batch_size, device, mb.confidence)
    joint.train()
    replaced = bank.update(items, confidences)

    if is_main_process:
        kept_set = set(kept)
        (out / "scores.json").write_text(json.dumps({"step": step, "candidates": [
            {"path": p, "emotion": emotions[e], "emotion_score": float(emotion_score[i]),
             "semantic_score": float(semantic_score[i]), "kept": i in kept_set}
            for i, (p, e) in enumerate(zip(paths, intended))]}, indent=1) + "\n")
        (bank_dir / "state.json").write_text(json.dumps({"step": step, **bank.state_dict()}) + "\n")
    return {"generated": len(paths), "kept": len(kept), "bank_images": len(bank.items), "bank_slots": bank.num_slots,
            "replaced": len(replaced), "generated_share": bank.generated_share(),
            "mean_replaced_confidence": float(confidences[replaced].mean()) if replaced else None,
            "seconds": round(time.time() - t0, 2)}
