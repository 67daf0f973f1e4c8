"""The emotion probe and the α table (paper Eq. 5): frozen CLIP image embeddings of each split are computed
once, a small probe learns p(e | I) on them, and α averages p(e | I) of the training images per scene and object
attribute. ``run_probe`` is the whole run; its command line is ``train/probe.py``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from uniemo.classifier import EmoClassifierConfig
from uniemo.clip import AttributeTextEncoder, build_tiny_clip, load_clip
from uniemo.config import save_config
from uniemo.correlation import build_correlation_table
from uniemo.data import build_dataset, build_transform, collate_records
from uniemo.probe import EmotionProbeConfig, clip_image_embeddings, probe_accuracy, probe_probabilities, train_probe
from uniemo.training.checks import clip_identity
from uniemo.training.probe_config import ProbeConfig, ProbeModelConfig
from uniemo.training.run import dataset_options, restrict_training_set

logger = logging.getLogger("uniemo.training.probe")


def build_clip(cfg: ProbeModelConfig):
    """The frozen CLIP (image tower for the probe, text tower for the attribute base) and its tokenizer.

    ``clip=null`` builds the same random tiny CLIP as train/understanding.py does for ``model.preset``, so
    that smoke runs of the two scripts share one text space.
    """
    if cfg.clip is not None:
        return load_clip(cfg.clip)
    arch = EmoClassifierConfig.from_preset(cfg.preset)
    clip_model, tokenizer = build_tiny_clip(
        image_size=arch.image_size, patch_size=arch.patch_size, width=arch.width, layers=arch.layers,
        heads=arch.heads, proj_dim=arch.proj_dim,
    )
    return clip_model.eval().requires_grad_(False), tokenizer


def _collate_counting_skips(records: list) -> dict:
    """``collate_records``, but a batch of only unreadable images still reports how many it dropped."""
    batch = collate_records(records)
    return batch if batch is not None else {"num_skipped": len(records)}


def embed_split(clip_model, dataset, batch_size: int, num_workers: int, device, desc: str) -> dict:
    """Run the CLIP image tower over a dataset once.

    Returns:
        ``{"embeds": (N, E) normalised, on CPU, "labels": (N,), "scenes": N x (str | None),
        "objects": N x list[str], "skipped": int}``; unreadable images (skip mode) are absent from all four.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate_counting_skips)
    embeds, labels, scenes, objects, skipped = [], [], [], [], 0
    for batch in tqdm(loader, desc=desc, unit="batch"):
        skipped += batch["num_skipped"]
        if "pixel_values" not in batch:  # every image of this batch was unreadable (skip mode)
            continue
        embeds.append(clip_image_embeddings(clip_model, batch["pixel_values"].to(device)).cpu())
        labels.append(batch["labels"])
        scenes += batch["scene"]
        objects += batch["objects"]
    dim = clip_model.config.projection_dim
    return {
        "embeds": torch.cat(embeds) if embeds else torch.zeros(0, dim),  # (N, E)
        "labels": torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),  # (N,)
        "scenes": scenes,
        "objects": objects,
        "skipped": skipped,
    }


def run_probe(cfg: ProbeConfig) -> dict:
    """Train the probe, build the α table, write the run folder (``probe/``, ``correlation.*``, ``metrics.json``,
    ``config.yaml``). Returns the metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)

    # Frozen CLIP and the evaluation transform of its own image size (no augmentation: the probe and the
    # table describe the images as they are)
    if not cfg.data.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset")
    clip_model, tokenizer = build_clip(cfg.model)
    clip_model.to(device)
    transform = build_transform(clip_model.config.vision_config.image_size, train=False)

    # Data
    extra = dataset_options(cfg.data)
    on_error = "skip" if cfg.data.skip_unreadable else "raise"
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split, transform, on_error, **extra)
    restrict_training_set(train_set, cfg.data)
    emotions = tuple(train_set.labels)
    val_set = None
    if cfg.data.val_split:
        val_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.val_split, transform, on_error, **extra)

    # Embed each split once; everything after this works on the cached (N, E) embeddings
    train = embed_split(clip_model, train_set, cfg.embed_batch_size, cfg.data.num_workers, device, "embed train")
    val = (embed_split(clip_model, val_set, cfg.embed_batch_size, cfg.data.num_workers, device, "embed val")
           if val_set is not None else None)

    # Train the probe (two layers: the α probe; one layer: the Emo-A scorer)
    probe_config = EmotionProbeConfig(embed_dim=train["embeds"].shape[1], num_classes=len(emotions),
                                      hidden=cfg.probe_hidden, layers=cfg.probe_layers, emotions=emotions)
    probe = train_probe(train["embeds"].to(device), train["labels"], probe_config, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, seed=cfg.seed, weight_decay=cfg.weight_decay)
    metrics: dict = {
        "train_accuracy": probe_accuracy(probe, train["embeds"], train["labels"]),
        "val_accuracy": probe_accuracy(probe, val["embeds"], val["labels"]) if val is not None else None,
        "num_train": len(train["labels"]),
        "num_val": len(val["labels"]) if val is not None else 0,
        "probe_layers": cfg.probe_layers,
        "embed_dim": probe_config.embed_dim,
        "emotions": list(emotions),
        "clip": cfg.model.clip,
        "dataset": cfg.data.dataset,
        "skipped_images": train["skipped"] + (val["skipped"] if val is not None else 0),
    }
    logger.info("probe (%d layer%s): train accuracy %.4f, val accuracy %s", cfg.probe_layers,
                "s" if cfg.probe_layers > 1 else "", metrics["train_accuracy"],
                "n/a" if metrics["val_accuracy"] is None else f"{metrics['val_accuracy']:.4f}")
    probe.cpu().save_pretrained(out_dir / "probe")

    # The α table: p(e | I) of the training images, averaged per scene and object attribute
    metrics["correlation_table"] = None
    if cfg.build_table:
        if cfg.probe_layers != 2:
            logger.info("building α from a %d-layer probe; the paper's α probe has two layers", cfg.probe_layers)
        table = build_correlation_table(
            probe_probabilities(probe, train["embeds"]), train["scenes"], train["objects"],
            AttributeTextEncoder(clip_model, tokenizer), mode=cfg.alpha_mode, min_count=cfg.min_count,
            emotions=emotions,
        )
        if table.is_empty():
            logger.warning(
                "the training split has no scene or object carried by >= %d image(s) (dataset %s has no "
                "attribute annotations?): no correlation table written, only the probe", cfg.min_count,
                cfg.data.dataset,
            )
        else:
            table.save(out_dir)
            metrics["correlation_table"] = {"num_scenes": table.num_scenes, "num_objects": table.num_objects,
                                            "mode": table.mode, "min_count": cfg.min_count}
            logger.info("α table: %d scenes, %d objects (mode %s)", table.num_scenes, table.num_objects,
                        table.mode)

    metrics["seconds"] = round(time.time() - t0, 2)
    # an empty validation split gives a NaN accuracy, which strict JSON cannot hold
    metrics = {k: None if isinstance(v, float) and v != v else v for k, v in metrics.items()}
    # stage 2 checks that its stage 1 used this same CLIP (train/joint.py, before loading anything)
    metrics["clip_identity"] = clip_identity(cfg.model.clip, cfg.model.preset)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics

