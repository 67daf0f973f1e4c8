"""The emotion space: per-emotion diagonal Gaussians of the three embeddings (docs/method.md section 6).

After stage 2 the trained encoder runs (eval mode, evaluation transform) over the training split; for each
emotion and each of ``cls_embed``, ``scene_embed``, ``object_embed`` we store the mean and the standard
deviation per channel. Generating from a label alone samples the three embeddings independently from
that emotion's Gaussians. Saved as ``emotion_space.safetensors`` (tensors + emotion list in the metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from uniemo.checkpoint import save_state_dict

KINDS = ("cls", "scene", "object")
FILENAME = "emotion_space.safetensors"


class EmotionSpace:
    """Means and stds (E, D) for each of ``KINDS``, E = number of emotions."""

    def __init__(self, emotions: tuple[str, ...], means: dict[str, Tensor], stds: dict[str, Tensor],
                 counts: Tensor):
        missing = [k for k in KINDS if k not in means or k not in stds]
        if missing:
            raise ValueError(f"emotion space lacks {missing}; expected {KINDS}")
        self.emotions = tuple(emotions)
        self.means, self.stds, self.counts = means, stds, counts

    @classmethod
    def fit(cls, features: dict[str, Tensor], labels: Tensor, emotions: tuple[str, ...],
            min_std: float = 1e-6) -> EmotionSpace:
        """Fit from gathered features.

        Args:
            features: ``{"cls": (N, D), "scene": (N, D), "object": (N, D)}`` over the training split.
            labels: (N,) emotion indices.
            emotions: the label names (index order).
        """
        labels = labels.long().cpu()
        counts = torch.bincount(labels, minlength=len(emotions))
        empty = [emotions[i] for i in range(len(emotions)) if counts[i] == 0]
        if empty:
            raise ValueError(f"no training images for emotion(s) {empty}: cannot fit their Gaussians")
        means, stds = {}, {}
        for kind in KINDS:
            x = features[kind].float().cpu()
            means[kind] = torch.stack([x[labels == e].mean(0) for e in range(len(emotions))])
            # population std (a single image gives std 0, clamped to min_std)
            stds[kind] = torch.stack([x[labels == e].std(0, unbiased=False) for e in range(len(emotions))])
            stds[kind] = stds[kind].clamp_min(min_std)
        return cls(emotions, means, stds, counts)

    def index(self, emotion: str | int) -> int:
        if isinstance(emotion, int):
            if not 0 <= emotion < len(self.emotions):
                raise ValueError(f"emotion index {emotion} out of range 0..{len(self.emotions) - 1}")
            return emotion
        if emotion not in self.emotions:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(self.emotions)}")
        return self.emotions.index(emotion)

    def sample(self, emotion: str | int, num: int, generator: torch.Generator | None = None,
               scale: float = 1.0) -> dict[str, Tensor]:
        """Draw ``num`` independent samples of the three embeddings for one emotion.

        Args:
            scale: multiplies the stds (0 gives the means: the emotion's centroid).
        Returns:
            ``{"cls": (num, D), "scene": (num, D), "object": (num, D)}``
        """
        e = self.index(emotion)
        out = {}
        for kind in KINDS:
            mean, std = self.means[kind][e], self.stds[kind][e]
            noise = torch.randn((num, mean.shape[0]), generator=generator, dtype=mean.dtype)
            out[kind] = mean + scale * std * noise
        return out

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILENAME
        tensors = {f"{k}_mean": self.means[k] for k in KINDS}
        tensors.update({f"{k}_std": self.stds[k] for k in KINDS})
        tensors["counts"] = self.counts
        save_state_dict(tensors, path, metadata={"format": "pt", "emotions": json.dumps(list(self.emotions))})
        return path

    @classmethod
    def load(cls, directory: str | Path) -> EmotionSpace:
        path = Path(directory) / FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"no {FILENAME} in {str(directory)!r}: the model has no emotion space")
        with safe_open(str(path), framework="pt") as f:
            emotions = tuple(json.loads(f.metadata()["emotions"]))
            means = {k: f.get_tensor(f"{k}_mean") for k in KINDS}
            stds = {k: f.get_tensor(f"{k}_std") for k in KINDS}
            counts = f.get_tensor("counts")
        return cls(emotions, means, stds, counts)

    def allclose(self, other: EmotionSpace, atol: float = 1e-5) -> bool:
        return self.emotions == other.emotions and all(
            torch.allclose(self.means[k], other.means[k], atol=atol)
            and torch.allclose(self.stds[k], other.stds[k], atol=atol) for k in KINDS)
