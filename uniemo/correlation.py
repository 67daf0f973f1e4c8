"""The emotional correlation coefficient α (paper Eq. 5, docs/method.md section 4): the α table, and its making.

``CorrelationTable``: per attribute j (a scene or object name of the training set) and emotion e, the
coefficient α_{j,e}, on top of an ``AttributeBase`` (the attribute names and their CLIP text embeddings), so
that a pooled expert query, projected into CLIP text space by the stage-1 contrastive projection (W_S or W_O,
see ``EmoClassifier.project_queries``), is matched to its nearest attribute and α is looked up for the
(ground-truth or target) emotion. The probabilities p(e | I) that build the table come from the emotion probe
(``uniemo.probe``).

Paper symbol -> code name:
    α_{j,e} (Eq. 5)            -> ``scene_alpha[j, e]`` / ``object_alpha[j, e]`` (emotion_correlation)
    α_Scene, α_Object (Eq. 6)  -> ``alpha_scene``, ``alpha_object`` (outputs of ``lookup``, inputs of EmoFusion)
    M_j                        -> ``scene_counts[j]`` / ``object_counts[j]``
    p(e | I)                   -> ``probe_probs`` (softmax of ``uniemo.probe.EmotionProbe`` on CLIP embeddings)
    attribute base             -> ``base`` (``scene_names`` / ``object_names`` and ``*_text_embeds``)
    W_S, W_O                   -> ``EmoClassifier.scene_proj`` / ``object_proj`` (they produce the points)

Departures from the released code (docs/OFFICIAL.md, "Remaining differences"), all deliberate: the released
code ships EmoGen's tables without the script that made them, matches *mapper outputs* (Stable Diffusion
token-embedding space) against CLIP text features, and uses one combined scene+object list. Here the table is
computed, queries are matched in CLIP text space through W_S / W_O, and scenes and objects are matched
against their own bases. Nothing here is adapted from another repository.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file
from torch import Tensor

from uniemo.attributes import AttributeBase
from uniemo.checkpoint import save_state_dict
from uniemo.constants import EMOTIONS

TABLE_TENSORS_NAME = "correlation.safetensors"
TABLE_JSON_NAME = "correlation.json"
TABLE_FORMAT_VERSION = 1
ALPHA_MODES: tuple[str, ...] = ("prob", "log")
# Floor for log p(e | I) in "log" mode: a float32 softmax can underflow to exactly 0, and one log(0) = -inf
# would otherwise wipe out that emotion for the whole attribute.
LOG_PROB_FLOOR = 1e-12


class TextEncoder(Protocol):
    """Anything with ``embed(names) -> (N, E)`` L2-normalised CLIP text embeddings (``AttributeTextEncoder``)."""

    def embed(self, names: list[str]) -> Tensor: ...


class CorrelationTable:
    """α_{j,e} for every scene and object attribute j of the training set, on top of their attribute base.

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

    Attributes:
        base: the ``AttributeBase`` of the names and text embeddings; ``match`` and ``nearest`` are its own.
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
        self.base = AttributeBase(scene_names, object_names, scene_text_embeds, object_text_embeds)
        self.scene_alpha = scene_alpha.detach().float().cpu()
        self.object_alpha = object_alpha.detach().float().cpu()
        self.scene_counts = [int(c) for c in scene_counts]
        self.object_counts = [int(c) for c in object_counts]
        self.emotions = tuple(emotions)
        self.mode = mode
        C = len(self.emotions)
        for kind, alpha, counts in (("scene", self.scene_alpha, self.scene_counts),
                                    ("object", self.object_alpha, self.object_counts)):
            n = len(self.base.names(kind))
            if alpha.shape != (n, C):
                raise ValueError(
                    f"{kind}_alpha must be ({n}, {C}) (attributes x emotions), got {tuple(alpha.shape)}"
                )
            if len(counts) != n:
                raise ValueError(f"{kind}_counts has {len(counts)} entries for {n} {kind} names")

    # the attribute base ------------------------------------------------------------------------------------

    @property
    def scene_names(self) -> list[str]:
        return self.base.scenes

    @property
    def object_names(self) -> list[str]:
        return self.base.objects

    @property
    def scene_text_embeds(self) -> Tensor:
        return self.base.scene_text_embeds

    @property
    def object_text_embeds(self) -> Tensor:
        return self.base.object_text_embeds

    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def num_scenes(self) -> int:
        return self.base.num_scenes

    @property
    def num_objects(self) -> int:
        return self.base.num_objects

    def is_empty(self) -> bool:
        return self.base.is_empty()

    def __repr__(self) -> str:
        return (f"CorrelationTable({self.num_scenes} scenes, {self.num_objects} objects, "
                f"{len(self.emotions)} emotions, mode={self.mode!r}, embed_dim={self.embed_dim})")

    def match(self, scene_points: Tensor, object_points: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The base's ``AttributeBase.match``: nearest scene and object rows of each sample, and their cosines."""
        return self.base.match(scene_points, object_points)

    def nearest(self, points: Tensor, kind: str, k: int = 3) -> list[list[tuple[str, float]]]:
        """The base's ``AttributeBase.nearest``: the ``k`` most similar names of each point, most similar first."""
        return self.base.nearest(points, kind, k)

    # lookup ------------------------------------------------------------------------------------------------

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
    """The α table from the probe's probabilities on the training images (paper Eq. 5, docs/method.md section 4).

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
