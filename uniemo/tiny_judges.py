"""The judges UniEmo-Tiny's reports score its images with, both built on the bundle's tiny CLIP.

- ``TinyClipJudge``: the tiny CLIP's image embeddings (what the emotion probe reads) and, zero-shot, the object
  name closest to each image (does a transfer image show the requested noun?); ``eval/tiny_report.py``.
- ``train_emo_a_probe``: the Emo-A scorer, a one-layer probe on the tiny CLIP's embeddings of the EmoShapes
  training split; ``eval/tiny_scores.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from uniemo.clip import load_clip
from uniemo.data import build_dataset
from uniemo.probe import EmotionProbeConfig, clip_image_embeddings, train_probe
from uniemo.scoring import ImageScorer, clip_pixels


class TinyClipJudge:
    """The tiny CLIP as a judge of generated images: their embeddings (for the emotion probe) and, zero-shot, the
    object name whose text ``template.format(name)`` lies closest to each image.

    Args:
        clip_dir: the CLIP folder (transformers layout; the bundle's ``clip/``).
        objects: the object names, in the order ``__call__``'s indices refer to.
        template: the text per name, with ``{}`` for the name (underscores become spaces).
    """

    def __init__(self, clip_dir: str | os.PathLike, objects: Sequence[str], template: str):
        if "{}" not in template:
            raise ValueError(f"the judge's template needs a {{}} for the object name, got {template!r}")
        self.clip, tokenizer = load_clip(str(clip_dir))
        self.size = self.clip.config.vision_config.image_size
        tokens = tokenizer([template.format(o.replace("_", " ")) for o in objects], padding=True,
                           return_tensors="pt")
        with torch.no_grad():
            self.text = F.normalize(self.clip.get_text_features(**tokens).pooler_output, dim=-1)

    def embed(self, images: Sequence[Image.Image]) -> Tensor:
        """L2-normalised CLIP image embeddings of PIL images, resized to the CLIP's input size."""
        return clip_image_embeddings(self.clip, clip_pixels(images, self.size))

    def similarities(self, images: Sequence[Image.Image]) -> Tensor:
        """(N, names) cosines between each image and each name's text."""
        return self.embed(images) @ self.text.t()

    def __call__(self, images: Sequence[Image.Image]) -> Tensor:
        """The index of the object name the tiny CLIP finds closest to each image."""
        return self.similarities(images).argmax(1)


def train_emo_a_probe(data_root: str | os.PathLike, clip: str | os.PathLike, out: str | os.PathLike, seed: int,
                      epochs: int = 60) -> Path:
    """The Emo-A scorer: a one-layer probe on the tiny CLIP's embeddings of the EmoShapes training split, with
    train/probe.py's tiny preset (lr 2e-2, batch 64); written to ``out/probe/`` (what ``--emo-probe`` reads).

    Returns:
        ``out``.
    """
    train_set = build_dataset("emoshapes", data_root, "train")
    embeds = ImageScorer(*load_clip(str(clip)), batch_size=64).embed([e.path for e in train_set.entries])
    labels = torch.tensor([e.label for e in train_set.entries])
    config = EmotionProbeConfig(embed_dim=embeds.shape[1], num_classes=len(train_set.labels), layers=1,
                                emotions=tuple(train_set.labels))
    probe = train_probe(embeds, labels, config, epochs=epochs, lr=2e-2, batch_size=64, seed=seed)
    out = Path(out)
    probe.save_pretrained(out / "probe")
    return out
