"""The attribute base: scene / object names, their frozen CLIP text embeddings, and matching points to them.

``AttributeBase`` is the one class that holds an attribute vocabulary with its text embeddings and finds
the attributes nearest to points in CLIP text space (``similarities``, ``match``, ``nearest``). Two things
are built on it:

- ``AttributeTargets`` (here): the base of the expert-query losses, built once per run from the training
  split's vocabulary ("attribute text embeddings are computed once and cached", docs/method.md section 3),
  saved with the model as ``attributes.json`` (names) + ``attributes.safetensors`` (embeddings), and used by
  stage 1, stage 2 and the UI's nearest-attribute explanation.
- ``CorrelationTable`` (``uniemo.correlation``): an attribute base plus its α matrices, saved as
  ``correlation.json`` + ``correlation.safetensors``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from uniemo.checkpoint import save_state_dict

ATTRIBUTE_KINDS: tuple[str, ...] = ("scene", "object")


class AttributeBase:
    """Scene and object attribute names with their L2-normalised CLIP text embeddings.

    Args:
        scenes: the S scene names (the scene base), in row order; ids are list positions.
        objects: the O object names (the object base), in row order.
        scene_text_embeds: (S, E) L2-normalised CLIP text embeddings of ``scenes``.
        object_text_embeds: (O, E) likewise for ``objects``.
    """

    def __init__(self, scenes: Sequence[str], objects: Sequence[str], scene_text_embeds: Tensor,
                 object_text_embeds: Tensor):
        self.scenes, self.objects = list(scenes), list(objects)
        self.scene_text_embeds = scene_text_embeds.detach().float().cpu()
        self.object_text_embeds = object_text_embeds.detach().float().cpu()
        E = self.scene_text_embeds.shape[-1]
        for kind in ATTRIBUTE_KINDS:
            names, embeds = self.names(kind), self.text_embeds(kind)
            if embeds.shape != (len(names), E):
                raise ValueError(f"{kind}_text_embeds must be ({len(names)}, {E}), one row per {kind} name, "
                                 f"got {tuple(embeds.shape)}")
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {kind} names in the attribute base")
        self.scene_index = {s: i for i, s in enumerate(self.scenes)}
        self.object_index = {o: i for i, o in enumerate(self.objects)}

    @property
    def embed_dim(self) -> int:
        return self.scene_text_embeds.shape[-1]

    @property
    def num_scenes(self) -> int:
        return len(self.scenes)

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    def is_empty(self) -> bool:
        return not self.scenes and not self.objects

    def names(self, kind: str) -> list[str]:
        """The ``"scene"`` or ``"object"`` names, in row order."""
        _check_kind(kind)
        return self.scenes if kind == "scene" else self.objects

    def text_embeds(self, kind: str) -> Tensor:
        """The (A, E) text embeddings of the ``"scene"`` or ``"object"`` names."""
        _check_kind(kind)
        return self.scene_text_embeds if kind == "scene" else self.object_text_embeds

    def similarities(self, points: Tensor, kind: str) -> Tensor:
        """(B, E) points -> (B, A) float32 cosine similarities against the ``kind`` base, on the points' device."""
        embeds = self.text_embeds(kind)
        if points.shape[-1] != self.embed_dim:
            raise ValueError(
                f"points have size {points.shape[-1]} but the attribute base's text embeddings have "
                f"{self.embed_dim}: the base was built with another CLIP text tower than the classifier's"
            )
        # Both sides are normalised already; normalising again is cheap and keeps this a true cosine
        # even for points that did not come through project_queries.
        return F.normalize(points.float(), dim=-1) @ F.normalize(embeds.to(points.device), dim=-1).T

    @torch.no_grad()
    def match(self, scene_points: Tensor, object_points: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The most similar scene and object attribute of each sample.

        Args:
            scene_points: (B, E) normalised points in CLIP text space (``project_queries(...)[0]``).
            object_points: (B, E) likewise (``project_queries(...)[1]``).

        Returns:
            (scene_idx (B,) long, object_idx (B,) long, scene_sim (B,), object_sim (B,)): row indices into
            the scene / object base and the cosine similarity of the match, on the points' device.

        Raises:
            ValueError: when the base has no scenes or no objects (there is nothing to match against).
        """
        for kind in ATTRIBUTE_KINDS:
            if not self.names(kind):
                raise ValueError(
                    f"the attribute base has no {kind} attributes (its training set carried no {kind} "
                    "annotations), so there is nothing to match against"
                )
        scene_sim, scene_idx = self.similarities(scene_points, "scene").max(dim=-1)
        object_sim, object_idx = self.similarities(object_points, "object").max(dim=-1)
        return scene_idx, object_idx, scene_sim, object_sim

    @torch.no_grad()
    def nearest(self, points: Tensor, kind: str, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` attributes most similar to each point, most similar first (the UI's explanation).

        Args:
            points: (B, E) or (E,) normalised points in CLIP text space.
            kind: ``"scene"`` or ``"object"``.
            k: how many names per point (clipped to the size of the base).

        Returns:
            One list of (name, cosine similarity) pairs per point; empty lists when the base has no ``kind``.
        """
        names = self.names(kind)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        points = points[None] if points.ndim == 1 else points  # (B, E)
        if not names:
            return [[] for _ in range(len(points))]
        sims, idx = self.similarities(points, kind).topk(min(k, len(names)), dim=-1)  # (B, k)
        return [[(names[j], float(s)) for j, s in zip(row_idx.tolist(), row_sim.tolist())]
                for row_idx, row_sim in zip(idx, sims)]


def _check_kind(kind: str) -> None:
    if kind not in ATTRIBUTE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ATTRIBUTE_KINDS)}, got {kind!r}")


class AttributeTargets(AttributeBase):
    """The attribute base of the expert-query losses: per-batch contrastive targets.

    Args:
        scenes, objects: the vocabularies (any order; ids are list positions).
        scene_embeds, object_embeds: (S, E), (O, E) L2-normalised CLIP text embeddings.
        dummy_embeds: optional (2, E) embeddings of the literal texts ``"scene"`` and ``"object"``, which the
            released code gives an image without that attribute; used only with released masking
            (``batch(..., dummy=True)``).
    """

    DUMMY_TEXTS = ("scene", "object")

    def __init__(self, scenes: list[str], objects: list[str], scene_embeds: Tensor, object_embeds: Tensor,
                 dummy_embeds: Tensor | None = None):
        super().__init__(scenes, objects, scene_embeds, object_embeds)
        self.dummy_embeds = None if dummy_embeds is None else dummy_embeds.float()

    @classmethod
    def from_text_encoder(cls, scenes: list[str], objects: list[str], text_encoder) -> AttributeTargets:
        """``text_encoder``: a ``uniemo.clip.AttributeTextEncoder`` (the frozen CLIP text tower)."""
        return cls(scenes, objects, text_encoder.embed(list(scenes)), text_encoder.embed(list(objects)),
                   text_encoder.embed(list(cls.DUMMY_TEXTS)))

    def batch(self, scenes: list, objects: list[list[str]], generator: torch.Generator | list[torch.Generator],
              device, dummy: bool = False):
        """Scene ids, one sampled object id per row (-1 where missing), and their text embeddings.

        ``generator``: one for the batch, or one per row (``uniemo.training.run.sample_generators``).

        ``dummy``: a missing row's text is the embedding of ``"scene"`` / ``"object"`` (the released code's
        stand-ins, which stay in the other rows' softmax as negatives under released masking); otherwise any
        row's embedding (the default loss never reads it).

        Returns:
            scene_ids (B,), object_ids (B,), scene_text (B, E), object_text (B, E)
        """
        scene_ids = torch.tensor([self.scene_index.get(s, -1) if s else -1 for s in scenes], dtype=torch.long)
        picks = []
        for row, objs in enumerate(objects):
            known = [self.object_index[o] for o in objs if o in self.object_index]
            g = generator[row] if isinstance(generator, (list, tuple)) else generator
            # one of the listed objects, sampled per step (docs/method.md section 3)
            picks.append(known[int(torch.randint(len(known), (1,), generator=g))] if known else -1)
        object_ids = torch.tensor(picks, dtype=torch.long)
        E = self.embed_dim
        scene_text = (self.scene_text_embeds[scene_ids.clamp_min(0)] if self.scenes
                      else torch.zeros(len(scenes), E))
        object_text = (self.object_text_embeds[object_ids.clamp_min(0)] if self.objects
                       else torch.zeros(len(objects), E))
        if dummy:
            if self.dummy_embeds is None:
                raise ValueError("released masking needs the embeddings of the texts 'scene' and 'object', which "
                                 "this attribute base lacks (it was saved by an older UniEmo): retrain stage 1")
            scene_text = torch.where((scene_ids < 0)[:, None], self.dummy_embeds[0], scene_text)
            object_text = torch.where((object_ids < 0)[:, None], self.dummy_embeds[1], object_text)
        return scene_ids.to(device), object_ids.to(device), scene_text.to(device), object_text.to(device)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "attributes.json").write_text(
            json.dumps({"scenes": self.scenes, "objects": self.objects}, indent=1) + "\n")
        tensors = {"scene_embeds": self.scene_text_embeds, "object_embeds": self.object_text_embeds}
        if self.dummy_embeds is not None:
            tensors["dummy_embeds"] = self.dummy_embeds
        save_state_dict(tensors, directory / "attributes.safetensors")

    @classmethod
    def load(cls, directory: str | Path) -> AttributeTargets:
        directory = Path(directory)
        names, tensors = directory / "attributes.json", directory / "attributes.safetensors"
        for path in (names, tensors):
            if not path.is_file():
                raise FileNotFoundError(
                    f"no {path.name} in {str(directory)!r} (written by train/understanding.py)")
        data = json.loads(names.read_text())
        t = load_file(str(tensors))
        return cls(data["scenes"], data["objects"], t["scene_embeds"], t["object_embeds"], t.get("dummy_embeds"))
