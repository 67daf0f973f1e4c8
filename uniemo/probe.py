"""The CLIP emotion probe: a small classifier on frozen, L2-normalised CLIP image embeddings.

With two fully connected layers it is the "pre-trained emotion classifier" of paper IV-A whose probabilities
p(e | I) build the α table (``uniemo.correlation``); with one layer it is the Emo-A scorer (docs/method.md
section 8), and its probability of the intended emotion is P_emo of explicit feedback (Algorithm 1).

Paper symbol -> code name:
    p(e | I)   -> ``probe_probabilities(probe, clip_image_embeddings(clip, pixels))``
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uniemo.checkpoint import PretrainedMixin
from uniemo.constants import EMOTIONS

logger = logging.getLogger(__name__)


@dataclass
class EmotionProbeConfig:
    """Architecture of an ``EmotionProbe``; saved as its ``config.json``.

    Args:
        embed_dim: size of the CLIP image embedding (the CLIP ``projection_dim``: 512 for ViT-B, 768 for ViT-L).
        num_classes: number of emotions; must equal ``len(emotions)``.
        hidden: width of the hidden layers (unused when ``layers == 1``).
        layers: number of fully connected layers: 2 (Linear, ReLU, Linear) is the α probe of paper IV-A,
            1 (a single Linear) the Emo-A scorer (docs/method.md section 8).
        emotions: class names in class-index order.
        normalize_input: L2-normalise the input embeddings inside ``forward``. Idempotent for embeddings
            that ``clip_image_embeddings`` already normalised; set ``False`` only for heads trained on raw
            projected CLIP features (EmoGen's Emo-A head, whose ``fc.weight`` / ``fc.bias`` keys load into a
            one-layer probe as they are).
    """

    embed_dim: int
    num_classes: int = 8
    hidden: int = 512
    layers: int = 2
    emotions: tuple[str, ...] = EMOTIONS
    normalize_input: bool = True

    def __post_init__(self) -> None:
        self.emotions = tuple(self.emotions)
        if self.embed_dim < 1 or self.hidden < 1:
            raise ValueError(f"embed_dim and hidden must be >= 1, got {self.embed_dim} and {self.hidden}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1 (2: the α probe, 1: the Emo-A scorer), got {self.layers}")
        if len(self.emotions) != self.num_classes:
            raise ValueError(
                f"num_classes={self.num_classes} but {len(self.emotions)} emotion names were given "
                f"({', '.join(self.emotions)}); pass emotions= with one name per class"
            )


class EmotionProbe(nn.Module, PretrainedMixin):
    """``layers`` fully connected layers on frozen CLIP image embeddings -> emotion logits.

    The last layer is always named ``fc`` so that a one-layer probe has exactly the state-dict keys
    ``fc.weight`` (C, E) and ``fc.bias`` (C,) of EmoGen's released Emo-A classifier.
    """

    config_class = EmotionProbeConfig

    def __init__(self, config: EmotionProbeConfig):
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        width = config.embed_dim
        for _ in range(config.layers - 1):
            blocks += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        self.hidden = nn.Sequential(*blocks)  # empty for the one-layer scorer
        self.fc = nn.Linear(width, config.num_classes)

    @property
    def emotions(self) -> tuple[str, ...]:
        return self.config.emotions

    def forward(self, image_embeds: Tensor) -> Tensor:
        """Args:
            image_embeds: (B, E) CLIP image embeddings (``clip_image_embeddings``).

        Returns:
            (B, C) emotion logits.
        """
        if image_embeds.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"expected image embeddings of size {self.config.embed_dim}, got {tuple(image_embeds.shape)}; "
                "the probe was trained on another CLIP"
            )
        if self.config.normalize_input:
            image_embeds = F.normalize(image_embeds, dim=-1)
        return self.fc(self.hidden(image_embeds))


@torch.no_grad()
def clip_image_embeddings(clip_model: nn.Module, pixel_values: Tensor, normalize: bool = True) -> Tensor:
    """Projected CLIP image embeddings of a batch, without gradient.

    Args:
        clip_model: a transformers ``CLIPModel``.
        pixel_values: (B, 3, H, W), CLIP-normalised, H = W = the vision config's ``image_size``.
        normalize: L2-normalise the embeddings (what ``EmotionProbe`` expects).

    Returns:
        (B, proj_dim) float32 embeddings on ``pixel_values``' device.
    """
    out = clip_model.get_image_features(pixel_values=pixel_values)
    # transformers >= 5 returns an output object whose pooler_output is the projected embedding;
    # older versions return that tensor directly.
    embeds = out.pooler_output if hasattr(out, "pooler_output") else out
    embeds = embeds.float()
    return F.normalize(embeds, dim=-1) if normalize else embeds


def train_probe(
    embeds: Tensor,
    labels: Tensor,
    config: EmotionProbeConfig,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    weight_decay: float = 1e-4,
) -> EmotionProbe:
    """Train an ``EmotionProbe`` on precomputed embeddings with cross-entropy (AdamW, cosine decay).

    Deterministic for a given ``seed``: the initialisation and the shuffling draw from their own seeded
    generators, and the caller's global RNG state is left untouched.

    Args:
        embeds: (N, E) CLIP image embeddings of the training images.
        labels: (N,) emotion indices in ``[0, config.num_classes)``.
        config: the probe architecture.
        epochs: passes over the N embeddings.
        lr: peak learning rate, decayed to 0 with a cosine over all steps.
        batch_size: embeddings per step.
        seed: seeds initialisation and shuffling.
        weight_decay: AdamW weight decay (applied to weights, not biases).

    Returns:
        The trained probe in eval mode, on ``embeds``' device.
    """
    if embeds.ndim != 2 or labels.shape != (embeds.shape[0],):
        raise ValueError(
            f"expected embeds (N, E) and labels (N,), got {tuple(embeds.shape)} and {tuple(labels.shape)}"
        )
    if embeds.shape[0] == 0:
        raise ValueError("no training embeddings: the training split is empty")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    labels = labels.long().to(embeds.device)
    if labels.min() < 0 or labels.max() >= config.num_classes:
        raise ValueError(f"labels must lie in [0, {config.num_classes}), got [{labels.min()}, {labels.max()}]")

    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        probe = EmotionProbe(config)
    probe.to(embeds.device).train()
    decay = [p for p in probe.parameters() if p.ndim >= 2]
    no_decay = [p for p in probe.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    steps_per_epoch = math.ceil(embeds.shape[0] / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    # The permutation is drawn on the CPU so that the same seed gives the same order on any device.
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(embeds.shape[0], generator=generator).to(embeds.device)
        total = 0.0
        for start in range(0, embeds.shape[0], batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(probe(embeds[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * idx.numel()
        logger.debug("probe epoch %d: loss %.4f", epoch, total / embeds.shape[0])
    return probe.eval()


@torch.no_grad()
def probe_probabilities(probe: EmotionProbe, embeds: Tensor, batch_size: int = 4096) -> Tensor:
    """p(e | I) for every embedding: (N, E) -> (N, C) softmax probabilities (float32, rows sum to 1)."""
    was_training = probe.training
    probe.eval()
    device = next(probe.parameters()).device
    chunks = [F.softmax(probe(embeds[i:i + batch_size].to(device)).float(), dim=-1)
              for i in range(0, embeds.shape[0], batch_size)]
    probe.train(was_training)
    if not chunks:
        return torch.zeros(0, probe.config.num_classes)
    return torch.cat(chunks).cpu()


@torch.no_grad()
def probe_accuracy(probe: EmotionProbe, embeds: Tensor, labels: Tensor, batch_size: int = 4096) -> float:
    """Top-1 accuracy of ``probe`` on (N, E) embeddings with (N,) labels; NaN when N = 0."""
    if embeds.shape[0] == 0:
        return float("nan")
    predicted = probe_probabilities(probe, embeds, batch_size).argmax(dim=-1)
    return (predicted == labels.cpu()).float().mean().item()

