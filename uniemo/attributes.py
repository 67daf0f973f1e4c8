"""The attribute base of the expert-query losses: scene / object names and their frozen CLIP text embeddings.

Built once per run from the training split's vocabulary (METHOD.md section 3: "attribute text embeddings
are computed once and cached"), saved with the model as ``attributes.json`` (names) +
``attributes.safetensors`` (embeddings), and used by stage 1, stage 2 and the UI's nearest-attribute
explanation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from uniemo.checkpoint import save_state_dict


class AttributeTargets:
    """Attribute vocabulary -> ids and text embeddings; per-batch contrastive targets.

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
        if len(scenes) != len(scene_embeds) or len(objects) != len(object_embeds):
            raise ValueError("one text embedding per attribute name is required")
        self.dummy_embeds = None if dummy_embeds is None else dummy_embeds.float()
        self.scenes, self.objects = list(scenes), list(objects)
        self.scene_index = {s: i for i, s in enumerate(self.scenes)}
        self.object_index = {o: i for i, o in enumerate(self.objects)}
        self.scene_embeds, self.object_embeds = scene_embeds.float(), object_embeds.float()

    @classmethod
    def from_text_encoder(cls, scenes: list[str], objects: list[str], text_encoder) -> AttributeTargets:
        """``text_encoder``: a ``uniemo.clip.AttributeTextEncoder`` (the frozen CLIP text tower)."""
        return cls(scenes, objects, text_encoder.embed(list(scenes)), text_encoder.embed(list(objects)),
                   text_encoder.embed(list(cls.DUMMY_TEXTS)))

    @property
    def embed_dim(self) -> int:
        return self.scene_embeds.shape[1]

    def batch(self, scenes: list, objects: list[list[str]], generator: torch.Generator, device, dummy: bool = False):
        """Scene ids, one sampled object id per row (-1 where missing), and their text embeddings.

        ``dummy``: a missing row's text is the embedding of ``"scene"`` / ``"object"`` (the released code's
        stand-ins, which stay in the other rows' softmax as negatives under released masking); otherwise any
        row's embedding (the default loss never reads it).

        Returns:
            scene_ids (B,), object_ids (B,), scene_text (B, E), object_text (B, E)
        """
        scene_ids = torch.tensor([self.scene_index.get(s, -1) if s else -1 for s in scenes], dtype=torch.long)
        picks = []
        for objs in objects:
            known = [self.object_index[o] for o in objs if o in self.object_index]
            # one of the listed objects, sampled per step (METHOD.md section 3)
            picks.append(known[int(torch.randint(len(known), (1,), generator=generator))] if known else -1)
        object_ids = torch.tensor(picks, dtype=torch.long)
        E = self.embed_dim
        scene_text = self.scene_embeds[scene_ids.clamp_min(0)] if self.scenes else torch.zeros(len(scenes), E)
        object_text = self.object_embeds[object_ids.clamp_min(0)] if self.objects else torch.zeros(len(objects), E)
        if dummy:
            if self.dummy_embeds is None:
                raise ValueError("released masking needs the embeddings of the texts 'scene' and 'object', which "
                                 "this attribute base lacks (it was saved by an older UniEmo): retrain stage 1")
            scene_text = torch.where((scene_ids < 0)[:, None], self.dummy_embeds[0], scene_text)
            object_text = torch.where((object_ids < 0)[:, None], self.dummy_embeds[1], object_text)
        return scene_ids.to(device), object_ids.to(device), scene_text.to(device), object_text.to(device)

    def nearest(self, points: Tensor, kind: str, k: int = 3) -> list[list[tuple[str, float]]]:
        """The k attribute names with the highest cosine similarity to each (normalised) point."""
        names, embeds = (self.scenes, self.scene_embeds) if kind == "scene" else (self.objects, self.object_embeds)
        if not names:
            return [[] for _ in range(len(points))]
        sims = points.float().cpu() @ embeds.t()  # (B, S)
        top = sims.topk(min(k, len(names)), dim=1)
        return [[(names[int(i)], float(s)) for s, i in zip(vals, idx)] for vals, idx in zip(top.values, top.indices)]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "attributes.json").write_text(
            json.dumps({"scenes": self.scenes, "objects": self.objects}, indent=1) + "\n")
        tensors = {"scene_embeds": self.scene_embeds, "object_embeds": self.object_embeds}
        if self.dummy_embeds is not None:
            tensors["dummy_embeds"] = self.dummy_embeds
        save_state_dict(tensors, directory / "attributes.safetensors")

    @classmethod
    def load(cls, directory: str | Path) -> AttributeTargets:
        directory = Path(directory)
        names, tensors = directory / "attributes.json", directory / "attributes.safetensors"
        for path in (names, tensors):
            if not path.is_file():
                raise FileNotFoundError(f"no {path.name} in {str(directory)!r} (written by train/understanding.py)")
        data = json.loads(names.read_text())
        t = load_file(str(tensors))
        return cls(data["scenes"], data["objects"], t["scene_embeds"], t["object_embeds"], t.get("dummy_embeds"))
