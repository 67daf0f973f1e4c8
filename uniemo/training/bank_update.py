"""One update of the online memory bank during stage 2 (EmoSym): generate with the model as it is now, keep
what the filter of Algorithm 1 keeps, and give the kept images the slots of the real samples the classifier is
most confident about (``uniemo.memory_bank``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from uniemo.data import collate_records
from uniemo.data.base import ImageEntry
from uniemo.emotion_space import EmotionSpace
from uniemo.filtering import select_feedback
from uniemo.memory_bank import confidence_pool
from uniemo.pipeline import UniEmoPipeline


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
    feats: dict[str, list] = {"cls": [], "scene": [], "object": []}
    seen = []
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(chosen), batch_size), desc="bank: emotion space", unit="batch"):
        batch = collate_records([dataset[i] for i in chosen[start:start + batch_size]])
        if batch is None:
            continue
        f = classifier.forward_features(batch["pixel_values"].to(device))
        for key, value in zip(("cls", "scene", "object"), (f.cls_embed, f.scene_embed, f.object_embed)):
            feats[key].append(value.float().cpu())
        seen.append(batch["labels"])
    classifier.train(was_training)
    return EmotionSpace.fit({k: torch.cat(v) for k, v in feats.items()}, torch.cat(seen),
                            tuple(classifier.config.emotions))


@torch.no_grad()
def real_confidences(classifier, dataset, indices: list[int], batch_size: int, device, kind: str):
    """The classifier's confidence on the *real* samples ``indices`` (eval transform): p(true label) or max p.

    Returns:
        (N,) float64 numpy array over the whole dataset, NaN where a sample was not scored.
    """
    out = np.full(len(dataset), np.nan)
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(indices), batch_size), desc="bank: real confidences", unit="batch"):
        batch = collate_records([dataset[i] for i in indices[start:start + batch_size]])
        if batch is None:
            continue
        probs = classifier(batch["pixel_values"].to(device)).logits.float().softmax(dim=-1).cpu()
        conf = (probs.gather(1, batch["labels"][:, None]).squeeze(1) if kind == "label"
                else probs.max(dim=-1).values)
        out[batch["index"].numpy()] = conf.double().numpy()
    classifier.train(was_training)
    return out


def update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer, space_set,
                       cfg, step: int, device, bank_dir: Path) -> dict:
    """One bank update (main process): generate M per emotion, filter (Alg. 1), score the real samples, swap.

    Returns:
        A log record; the bank's state is also written to ``bank_dir/state.json`` for the other processes.
    """
    mb = cfg.memory_bank
    t0 = time.time()
    inner = getattr(joint, "module", joint)
    emotions = tuple(inner.classifier.config.emotions)
    out = bank_dir / f"step-{step:06d}"
    # Conditions from the model as it is now: a quick emotion space, then the stock inference path
    space = quick_emotion_space(inner.classifier, space_set, mb.space_per_emotion, cfg.space_batch_size, device,
                                seed=cfg.seed * 100_003 + step)
    saved_scheduler = pipe.scheduler
    paths, intended = [], []
    try:
        generator = UniEmoPipeline(inner.classifier, inner.fusion, space, attributes, pipe, placeholder_id,
                                   correlation, resolution=cfg.resolution).to(device)
        generator.set_scheduler(mb.scheduler)
        for e, emotion in enumerate(tqdm(emotions, desc="bank: generate", unit="emotion")):
            (out / emotion).mkdir(parents=True, exist_ok=True)
            base = (cfg.seed * 100_003 + step) * 100_000 + 1000 * e  # image i: base + i, distinct per update
            for start in range(0, mb.per_emotion, 16):
                count = min(16, mb.per_emotion - start)
                images = generator.generate(emotion, num_images=count, seed=base + start,
                                            num_inference_steps=mb.steps, guidance_scale=mb.guidance)
                for i, image in enumerate(images, start=start):
                    path = out / emotion / f"{emotion}_{i:04d}.png"
                    image.save(path)
                    paths.append(str(path))
                    intended.append(e)
    finally:
        # UniEmoPipeline switched the shared SD pipeline's sampler and put the modules in eval mode
        pipe.scheduler = saved_scheduler
        joint.train()

    # Algorithm 1 on the new images, bands within each emotion
    scores = scorer.feedback_scores(paths, intended, progress="bank: score")
    kept = select_feedback(scores["emotion_score"], scores["semantic_score"], mb.eta, mb.delta, groups=intended)
    items = [ImageEntry(path=paths[i], label=intended[i]) for i in kept]

    # The real samples' confidence, from the real images (EmoSym's code scored the generated ones here)
    pool = confidence_pool(bank.num_real, mb.confidence_pool, cfg.seed * 100_003 + step)
    confidences = real_confidences(inner.classifier, space_set, pool, cfg.space_batch_size, device, mb.confidence)
    joint.train()
    replaced = bank.update(items, confidences)

    kept_set = set(kept)
    (out / "scores.json").write_text(json.dumps({"step": step, "candidates": [
        {"path": p, "emotion": emotions[e], "emotion_score": float(scores["emotion_score"][i]),
         "semantic_score": float(scores["semantic_score"][i]), "kept": i in kept_set}
        for i, (p, e) in enumerate(zip(paths, intended))]}, indent=1) + "\n")
    (bank_dir / "state.json").write_text(json.dumps({"step": step, **bank.state_dict()}) + "\n")
    return {"generated": len(paths), "kept": len(kept), "bank_images": len(bank.items), "bank_slots": bank.num_slots,
            "replaced": len(replaced), "generated_share": bank.generated_share(),
            "mean_replaced_confidence": float(confidences[replaced].mean()) if replaced else None,
            "seconds": round(time.time() - t0, 2)}
