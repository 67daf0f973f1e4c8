"""The emotional correlation coefficient α (paper Eq. 5, METHOD.md section 4) and the CLIP emotion probe.

Two pieces live here:

- ``EmotionProbe``: a small classifier on frozen, L2-normalised CLIP image embeddings. With two fully
  connected layers it is the "pre-trained emotion classifier" of paper IV-A whose probabilities p(e | I)
  build the α table; with one layer it is the Emo-A scorer of METHOD.md section 8, and its probability of
  the intended emotion is P_emo of explicit feedback (section 7, Algorithm 1).
- ``CorrelationTable``: per attribute j (a scene or object name of the training set) and emotion e, the
  coefficient α_{j,e}; plus the attribute names and their CLIP text embeddings, so that a pooled expert
  query, projected into CLIP text space by the stage-1 contrastive projection (W_S or W_O, see
  ``EmoClassifier.project_queries``), is matched to its nearest attribute and α is looked up for the
  (ground-truth or target) emotion. The same matching gives the UI its "scene looks like ..." explanation.

Paper symbol -> code name:
    α_{j,e} (Eq. 5)            -> ``scene_alpha[j, e]`` / ``object_alpha[j, e]`` (emotion_correlation)
    α_Scene, α_Object (Eq. 6)  -> ``alpha_scene``, ``alpha_object`` (outputs of ``lookup``, inputs of EmoFusion)
    M_j                        -> ``scene_counts[j]`` / ``object_counts[j]``
    p(e | I)                   -> ``probe_probs`` (softmax of ``EmotionProbe`` on CLIP image embeddings)
    attribute base             -> ``scene_names`` / ``object_names`` and ``*_text_embeds``
    W_S, W_O                   -> ``EmoClassifier.scene_proj`` / ``object_proj`` (they produce the points)

Departures from the released code (docs/reference/official_code_notes.md section 3), all deliberate:
the released code ships EmoGen's tables without the script that made them, matches *mapper outputs*
(Stable Diffusion token-embedding space) against CLIP text features, and uses one combined scene+object
list. Here the table is computed, queries are matched in CLIP text space through W_S / W_O, and scenes and
objects are matched against their own bases. Nothing here is adapted from another repository.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from uniemo.checkpoint import PretrainedMixin, save_state_dict
from uniemo.constants import EMOTIONS

logger = logging.getLogger(__name__)

TABLE_TENSORS_NAME = "correlation.safetensors"
TABLE_JSON_NAME = "correlation.json"
TABLE_FORMAT_VERSION = 1
ALPHA_MODES: tuple[str, ...] = ("prob", "log")
ATTRIBUTE_KINDS: tuple[str, ...] = ("scene", "object")
# Floor for log p(e | I) in "log" mode: a float32 softmax can underflow to exactly 0, and one log(0) = -inf
# would otherwise wipe out that emotion for the whole attribute.
LOG_PROB_FLOOR = 1e-12


# ----------------------------------------------------------------------------------------------------------
# The emotion probe


@dataclass
class EmotionProbeConfig:
    """Architecture of an ``EmotionProbe``; saved as its ``config.json``.

    Args:
        embed_dim: size of the CLIP image embedding (the CLIP ``projection_dim``: 512 for ViT-B, 768 for ViT-L).
        num_classes: number of emotions; must equal ``len(emotions)``.
        hidden: width of the hidden layers (unused when ``layers == 1``).
        layers: number of fully connected layers: 2 (Linear, ReLU, Linear) is the α probe of paper IV-A,
            1 (a single Linear) the Emo-A scorer of METHOD.md section 8.
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


# ----------------------------------------------------------------------------------------------------------
# The α table


class TextEncoder(Protocol):
    """Anything with ``embed(names) -> (N, E)`` L2-normalised CLIP text embeddings (``AttributeTextEncoder``)."""

    def embed(self, names: list[str]) -> Tensor: ...


class CorrelationTable:
    """α_{j,e} for every scene and object attribute j of the training set, with the attribute text embeddings.

    Args:
        scene_names: the S scene attributes (the scene base), in row order.
        object_names: the O object attributes (the object base), in row order.
        scene_text_embeds: (S, E) L2-normalised CLIP text embeddings of ``scene_names``.
        object_text_embeds: (O, E) likewise for ``object_names``.
        scene_alpha: (S, C) α of each scene for each emotion (rows sum to 1 in both modes).
        object_alpha: (O, C) likewise for objects.
        scene_counts: M_j, the number of training images carrying each scene.
        object_counts: M_j for each object.
        emotions: the C emotion names, in class-index order (the columns).
        mode: ``"prob"`` (mean probability) or ``"log"`` (softmax of the mean log-probability); see
            ``build_correlation_table``.
    """

    def __init__(
        self,
        scene_names: Sequence[str],
        object_names: Sequence[str],
        scene_text_embeds: Tensor,
        object_text_embeds: Tensor,
        scene_alpha: Tensor,
        object_alpha: Tensor,
        scene_counts: Sequence[int],
        object_counts: Sequence[int],
        emotions: Sequence[str] = EMOTIONS,
        mode: str = "prob",
    ):
        if mode not in ALPHA_MODES:
            raise ValueError(f"mode must be one of {', '.join(ALPHA_MODES)}, got {mode!r}")
        self.scene_names = list(scene_names)
        self.object_names = list(object_names)
        self.scene_text_embeds = scene_text_embeds.detach().float().cpu()
        self.object_text_embeds = object_text_embeds.detach().float().cpu()
        self.scene_alpha = scene_alpha.detach().float().cpu()
        self.object_alpha = object_alpha.detach().float().cpu()
        self.scene_counts = [int(c) for c in scene_counts]
        self.object_counts = [int(c) for c in object_counts]
        self.emotions = tuple(emotions)
        self.mode = mode
        self._check()

    def _check(self) -> None:
        """Shapes agree with the names, emotions and each other (a corrupt file fails here, not later)."""
        C = len(self.emotions)
        E = self.scene_text_embeds.shape[-1]
        for kind, names, embeds, alpha, counts in (
            ("scene", self.scene_names, self.scene_text_embeds, self.scene_alpha, self.scene_counts),
            ("object", self.object_names, self.object_text_embeds, self.object_alpha, self.object_counts),
        ):
            n = len(names)
            if embeds.shape != (n, E):
                raise ValueError(f"{kind}_text_embeds must be ({n}, {E}), got {tuple(embeds.shape)}")
            if alpha.shape != (n, C):
                raise ValueError(
                    f"{kind}_alpha must be ({n}, {C}) (attributes x emotions), got {tuple(alpha.shape)}"
                )
            if len(counts) != n:
                raise ValueError(f"{kind}_counts has {len(counts)} entries for {n} {kind} names")
            if len(set(names)) != n:
                raise ValueError(f"duplicate {kind} names in the table")

    @property
    def embed_dim(self) -> int:
        return self.scene_text_embeds.shape[-1]

    @property
    def num_scenes(self) -> int:
        return len(self.scene_names)

    @property
    def num_objects(self) -> int:
        return len(self.object_names)

    def is_empty(self) -> bool:
        return not self.scene_names and not self.object_names

    def __repr__(self) -> str:
        return (f"CorrelationTable({self.num_scenes} scenes, {self.num_objects} objects, "
                f"{len(self.emotions)} emotions, mode={self.mode!r}, embed_dim={self.embed_dim})")

    # matching and lookup ----------------------------------------------------------------------------------

    def _base(self, kind: str) -> tuple[list[str], Tensor]:
        if kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ATTRIBUTE_KINDS)}, got {kind!r}")
        names, embeds = ((self.scene_names, self.scene_text_embeds) if kind == "scene"
                         else (self.object_names, self.object_text_embeds))
        if not names:
            raise ValueError(
                f"the correlation table has no {kind} attributes (its training set carried no {kind} "
                "annotations), so there is nothing to match against"
            )
        return names, embeds

    def _similarities(self, points: Tensor, kind: str) -> Tensor:
        """(B, E) points -> (B, A) cosine similarities against the ``kind`` base."""
        _, embeds = self._base(kind)
        if points.shape[-1] != self.embed_dim:
            raise ValueError(
                f"points have size {points.shape[-1]} but the table's text embeddings have {self.embed_dim}: "
                "the table was built with another CLIP text tower than the classifier's"
            )
        embeds = embeds.to(device=points.device, dtype=points.dtype)
        # Both sides are normalised already; normalising again is cheap and keeps this a true cosine
        # even for points that did not come through project_queries.
        return F.normalize(points, dim=-1) @ F.normalize(embeds, dim=-1).T  # (B, A)

    @torch.no_grad()
    def match(self, scene_points: Tensor, object_points: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The most similar scene and object attribute of each sample.

        Args:
            scene_points: (B, E) normalised points in CLIP text space (``project_queries(...)[0]``).
            object_points: (B, E) likewise (``project_queries(...)[1]``).

        Returns:
            (scene_idx (B,) long, object_idx (B,) long, scene_sim (B,), object_sim (B,)): row indices into
            the scene / object base and the cosine similarity of the match, on the points' device.
        """
        scene_sim, scene_idx = self._similarities(scene_points, "scene").max(dim=-1)
        object_sim, object_idx = self._similarities(object_points, "object").max(dim=-1)
        return scene_idx, object_idx, scene_sim, object_sim

    @torch.no_grad()
    def lookup(self, scene_idx: Tensor, object_idx: Tensor, emotion_idx: Tensor | int) -> tuple[Tensor, Tensor]:
        """α_Scene = α_{j_S, e} and α_Object = α_{j_O, e}, carrying no gradient.

        Args:
            scene_idx: (B,) rows of the scene base (from ``match``).
            object_idx: (B,) rows of the object base.
            emotion_idx: (B,) emotion indices, or one int for the whole batch: the ground-truth emotion in
                training, the target emotion at inference.

        Returns:
            (alpha_scene (B,), alpha_object (B,)) float32 on ``scene_idx``' device.
        """
        device = scene_idx.device
        emotion_idx = torch.as_tensor(emotion_idx, dtype=torch.long, device=device)
        if emotion_idx.ndim == 0:
            emotion_idx = emotion_idx.expand(scene_idx.shape[0])  # one emotion for the whole batch
        if emotion_idx.shape != scene_idx.shape or object_idx.shape != scene_idx.shape:
            raise ValueError(
                f"scene_idx, object_idx and emotion_idx must all be (B,), got {tuple(scene_idx.shape)}, "
                f"{tuple(object_idx.shape)} and {tuple(emotion_idx.shape)}"
            )
        C = len(self.emotions)
        if emotion_idx.numel() and (emotion_idx.min() < 0 or emotion_idx.max() >= C):
            raise ValueError(f"emotion indices must lie in [0, {C}) ({', '.join(self.emotions)})")
        alpha_scene = self.scene_alpha.to(device)[scene_idx.long(), emotion_idx]
        alpha_object = self.object_alpha.to(device)[object_idx.long().to(device), emotion_idx]
        return alpha_scene, alpha_object

    @torch.no_grad()
    def emotion_correlation(
        self, scene_points: Tensor, object_points: Tensor, emotion_idx: Tensor | int
    ) -> tuple[Tensor, Tensor]:
        """``match`` then ``lookup``: (B, E) scene / object points and emotions -> (alpha_scene, alpha_object)."""
        scene_idx, object_idx, _, _ = self.match(scene_points, object_points)
        return self.lookup(scene_idx, object_idx, emotion_idx)

    @torch.no_grad()
    def nearest(self, points: Tensor, kind: str, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` attributes most similar to each point, most similar first (for the UI's explanation).

        Args:
            points: (B, E) or (E,) normalised points in CLIP text space.
            kind: ``"scene"`` or ``"object"``.
            k: how many names per point (at most the size of the base).

        Returns:
            One list of (name, cosine similarity) pairs per point.
        """
        names, _ = self._base(kind)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        points = points[None] if points.ndim == 1 else points  # (B, E)
        sims, idx = self._similarities(points, kind).topk(min(k, len(names)), dim=-1)  # (B, k)
        return [[(names[j], float(s)) for j, s in zip(row_idx.tolist(), row_sim.tolist())]
                for row_idx, row_sim in zip(idx, sims)]

    # files ------------------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write ``correlation.safetensors`` (the four tensors) and ``correlation.json`` (names, counts,
        emotions, mode, format version) into ``directory`` (created if needed)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_state_dict({
            "scene_text_embeds": self.scene_text_embeds,
            "object_text_embeds": self.object_text_embeds,
            "scene_alpha": self.scene_alpha,
            "object_alpha": self.object_alpha,
        }, out / TABLE_TENSORS_NAME)
        meta = {
            "format_version": TABLE_FORMAT_VERSION,
            "mode": self.mode,
            "emotions": list(self.emotions),
            "embed_dim": self.embed_dim,
            "scene_names": self.scene_names,
            "scene_counts": self.scene_counts,
            "object_names": self.object_names,
            "object_counts": self.object_counts,
        }
        (out / TABLE_JSON_NAME).write_text(json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> CorrelationTable:
        """Read a table written by ``save``: JSON and safetensors only, never pickle."""
        directory = Path(directory)
        for name in (TABLE_JSON_NAME, TABLE_TENSORS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"no {name} in {str(directory)!r}: not a correlation table folder (write one with "
                    "train/probe.py)"
                )
        meta = json.loads((directory / TABLE_JSON_NAME).read_text())
        version = meta.get("format_version")
        if not isinstance(version, int) or version > TABLE_FORMAT_VERSION:
            raise ValueError(
                f"{directory / TABLE_JSON_NAME} has format_version {version!r}; this UniEmo reads versions "
                f"<= {TABLE_FORMAT_VERSION} (it was probably written by a newer UniEmo)"
            )
        tensors = load_file(str(directory / TABLE_TENSORS_NAME))
        missing = sorted({"scene_text_embeds", "object_text_embeds", "scene_alpha", "object_alpha"} - set(tensors))
        if missing:
            raise ValueError(f"{directory / TABLE_TENSORS_NAME} lacks tensor(s) {missing}")
        return cls(
            scene_names=meta["scene_names"], object_names=meta["object_names"],
            scene_text_embeds=tensors["scene_text_embeds"], object_text_embeds=tensors["object_text_embeds"],
            scene_alpha=tensors["scene_alpha"], object_alpha=tensors["object_alpha"],
            scene_counts=meta["scene_counts"], object_counts=meta["object_counts"],
            emotions=meta["emotions"], mode=meta["mode"],
        )


def _attribute_alpha(
    values: Tensor, image_idx: list[int], attr_idx: list[int], num_attributes: int
) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` (N, C) over the images of each attribute, from (image, attribute) pairs.

    Returns:
        (means (A, C), counts (A,)); a row with count 0 is 0.
    """
    sums = torch.zeros(num_attributes, values.shape[1], dtype=values.dtype)
    counts = torch.zeros(num_attributes, dtype=values.dtype)
    if image_idx:
        attr = torch.tensor(attr_idx)
        sums.index_add_(0, attr, values[torch.tensor(image_idx)])  # Σ_k over the M_j images of j
        counts.index_add_(0, attr, torch.ones(len(attr_idx), dtype=values.dtype))
    return sums / counts.clamp_min(1)[:, None], counts


def build_correlation_table(
    probe_probs: Tensor,
    scenes: Sequence[str | None],
    objects: Sequence[Sequence[str]],
    text_encoder: TextEncoder,
    mode: str = "prob",
    min_count: int = 1,
    emotions: Sequence[str] | None = None,
) -> CorrelationTable:
    """The α table from the probe's probabilities on the training images (paper Eq. 5, METHOD.md section 4).

    For each attribute j carried by M_j >= ``min_count`` training images (an image carries a scene when its
    scene annotation names it, an object when its object list contains it; each image counts once per
    attribute, and images with a missing scene count for no scene):

    - ``mode="prob"`` (default): α_{j,e} = (1/M_j) Σ_k p(e | I_k), the mean posterior. This is what the
      released tables (EmoGen's) hold: every row is a distribution over emotions.
    - ``mode="log"``: Eq. 5 as printed, (1/M_j) Σ_k log p(e | I_k), followed by a softmax over e. The raw
      mean log-probabilities are <= 0, and a fused condition α_Scene·φ1(...) + α_Object·φ2(...) would have
      its attribute terms' signs flipped by them; the softmax turns them into the normalised geometric mean
      of p(e | I_k), exp(mean log p_e) / Σ_e' exp(mean log p_e'), which keeps Eq. 5's ordering of emotions
      and is a distribution like the "prob" table.

    Attributes with fewer than ``min_count`` images (and so every attribute with none) are absent from the
    table. Names are sorted, matching ``EmotionDataset.attribute_vocab``.

    Args:
        probe_probs: (N, C) p(e | I) of the N training images (softmax of the emotion probe).
        scenes: N scene names, ``None`` (or empty) where an image has no scene.
        objects: N lists of object names, possibly empty.
        text_encoder: embeds the attribute names (``AttributeTextEncoder`` on the classifier's CLIP, so that
            the stage-1 projections W_S / W_O point into the same space).
        mode: ``"prob"`` or ``"log"``.
        min_count: the minimum M_j for an attribute to enter the base.
        emotions: the C emotion names; default ``EMOTIONS`` when C = 8.

    Returns:
        The ``CorrelationTable``.
    """
    if mode not in ALPHA_MODES:
        raise ValueError(f"mode must be one of {', '.join(ALPHA_MODES)}, got {mode!r}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if probe_probs.ndim != 2:
        raise ValueError(f"probe_probs must be (N, C), got {tuple(probe_probs.shape)}")
    N, C = probe_probs.shape
    if len(scenes) != N or len(objects) != N:
        raise ValueError(f"{N} probability rows but {len(scenes)} scenes and {len(objects)} object lists")
    if N and (probe_probs.min() < 0 or probe_probs.max() > 1 + 1e-4):
        raise ValueError("probe_probs must be probabilities in [0, 1] (a softmax), not logits")
    if emotions is None:
        if C != len(EMOTIONS):
            raise ValueError(f"probe_probs has {C} classes: pass emotions= with their names")
        emotions = EMOTIONS
    if len(emotions) != C:
        raise ValueError(f"{len(emotions)} emotion names for {C} probability columns")

    # Averaging in float64: Σ over tens of thousands of images, and log-probabilities down to log(1e-12).
    probs = probe_probs.detach().double().cpu()
    values = probs.clamp_min(LOG_PROB_FLOOR).log() if mode == "log" else probs

    def table_part(pairs: list[tuple[int, str]]) -> tuple[list[str], Tensor, list[int]]:
        names = sorted({name for _, name in pairs})
        index = {name: j for j, name in enumerate(names)}
        means, counts = _attribute_alpha(values, [i for i, _ in pairs], [index[n] for _, n in pairs], len(names))
        keep = [j for j in range(len(names)) if counts[j] >= min_count]
        alpha = means[keep]  # (A, C)
        if mode == "log":
            alpha = alpha.softmax(dim=-1)  # normalised geometric mean, see the docstring
        return [names[j] for j in keep], alpha.float().reshape(len(keep), C), [int(counts[j]) for j in keep]

    scene_pairs = [(i, s.strip()) for i, s in enumerate(scenes) if isinstance(s, str) and s.strip()]
    # dict.fromkeys: an image listing the same object twice still carries it once
    object_pairs = [(i, o) for i, objs in enumerate(objects) for o in dict.fromkeys(objs) if o]
    scene_names, scene_alpha, scene_counts = table_part(scene_pairs)
    object_names, object_alpha, object_counts = table_part(object_pairs)
    return CorrelationTable(
        scene_names=scene_names, object_names=object_names,
        scene_text_embeds=text_encoder.embed(scene_names), object_text_embeds=text_encoder.embed(object_names),
        scene_alpha=scene_alpha, object_alpha=object_alpha,
        scene_counts=scene_counts, object_counts=object_counts,
        emotions=emotions, mode=mode,
    )
