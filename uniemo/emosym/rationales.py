"""EmoSym's reasoning knowledge base: one sentence per image that says why it carries its emotion.

Three sources, one per situation:

- **EmoShapes' rule** (``emoshapes_rationale``): the composition and what its (scene group, object group) cell
  means, e.g. ``"a skull in a cemetery: a token of death among the dead"``. One sentence per (scene, main object):
  192 in all, and each names its cell, so it decides the emotion as the rule does.
- **A JSONL file the user provides** (``read_rationale_file``): ``{"image": <path relative to the data root, or
  EmoSet's image id>, "rationale": "<one sentence>"}`` per line, as written by a VLM or by hand.
- **Attribute templates** (``attribute_rationale``), the fallback for any image the file does not cover: the
  image's objects and scene, and EmoSet's brightness, colorfulness, facial expression and human action where
  annotated. The emotion's name never enters a sentence (the rationale must say *why*, not *what*).

``RationaleBase`` holds the distinct sentences with their text embeddings; ``nearest`` answers classify's "why".
Nothing here is adapted from another repository.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from uniemo.data.base import ImageEntry
from uniemo.data.emoshapes.rule import EMOTION_TABLE, OBJECT_GROUP_OF, SCENE_GROUP_OF, caption_of, with_article

# what each cell of EmoShapes' table means; its emotion is EMOTION_TABLE's (see the module's test)
CELL_MEANING: dict[tuple[str, str], str] = {
    ("cozy", "festive"): "playful treats in a homely place",
    ("cozy", "nature"): "gentle living things at home and at peace",
    ("cozy", "threat"): "something vile where one lives",
    ("cozy", "eerie"): "a sign of loss in a familiar place",
    ("vast", "festive"): "a celebration under open skies",
    ("vast", "nature"): "nature at its grandest",
    ("vast", "threat"): "danger with nowhere to hide",
    ("vast", "eerie"): "a quiet remembrance in a calm expanse",
    ("dark", "festive"): "a celebration left alone in the dark",
    ("dark", "nature"): "the wild closing in at night",
    ("dark", "threat"): "a cruel menace in the shadows",
    ("dark", "eerie"): "a spooky game in the dark",
    ("harsh", "festive"): "joy wrecked by a hostile place",
    ("harsh", "nature"): "life spoiled by a hostile place",
    ("harsh", "threat"): "thrilling danger at the edge",
    ("harsh", "eerie"): "the sublime face of death in the raging elements",
}
EXTRA_PHRASES = {  # EmoSet's annotations, in the order a template reads them
    "brightness": "{} brightness", "colorfulness": "{} colourfulness",
    "facial_expression": "a {} face", "human_action": "someone {}",
}


def emoshapes_rationale(scene: str, objects: Sequence[str]) -> str:
    """The rule's reason for a composition: its main object in its scene, then what the cell means."""
    if not objects:
        raise ValueError("a rationale needs at least one object")
    cell = (SCENE_GROUP_OF[scene], OBJECT_GROUP_OF[objects[0]])
    return f"{caption_of(scene, objects[:1])}: {CELL_MEANING[cell]}"


def cell_emotion(scene: str, objects: Sequence[str]) -> str:
    """The emotion of the cell a rationale describes (EmoShapes' table)."""
    return EMOTION_TABLE[SCENE_GROUP_OF[scene]][OBJECT_GROUP_OF[objects[0]]]


def attribute_rationale(entry: ImageEntry) -> str | None:
    """A template sentence from the image's annotations, or ``None`` when it has none."""
    parts = []
    if entry.objects or entry.scene:
        things = " and ".join(with_article(o.replace("_", " ")) for o in entry.objects) or "a scene"
        parts.append(things + (f" in {with_article(entry.scene.replace('_', ' '))}" if entry.scene else ""))
    for key, phrase in EXTRA_PHRASES.items():
        value = entry.extra.get(key)
        if value not in (None, "", "none"):
            parts.append(phrase.format(str(value).replace("_", " ")))
    return ", ".join(parts) if parts else None


def read_rationale_file(path: str | Path) -> dict[str, str]:
    """``{image: rationale}`` from a JSONL file; a line without both keys, or an empty sentence, is an error
    that names the line."""
    out = {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rationale file {path} does not exist")
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image, sentence = record["image"], record["rationale"].strip()
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
            raise ValueError(f"{path}:{number}: expected {{\"image\": ..., \"rationale\": \"...\"}} ({err})") from None
        if not sentence:
            raise ValueError(f"{path}:{number}: the rationale of {image} is empty")
        out[str(image)] = sentence
    return out


def rationales_for(entries: Sequence[ImageEntry], source: str, root: str | Path | None = None,
                   file_rationales: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per entry.

    Args:
        source: ``"emoshapes"`` (the rule), ``"file"`` (``file_rationales``, attribute templates where it has no
            sentence) or ``"attributes"`` (templates only).
        root: the data root, to look an entry up in the file by its relative path.
    Raises ``ValueError`` for an entry no source can describe.
    """
    if source not in ("emoshapes", "file", "attributes"):
        raise ValueError(f"unknown rationale source {source!r}; expected emoshapes, file or attributes")
    if source == "file" and file_rationales is None:
        raise ValueError("source 'file' needs the rationale file's sentences")
    out = []
    for entry in entries:
        sentence = None
        if source == "emoshapes":
            sentence = emoshapes_rationale(entry.scene, entry.objects) if entry.scene and entry.objects else None
        elif source == "file":
            keys = [entry.path, Path(entry.path).stem, Path(entry.path).name]
            if root is not None:
                try:
                    keys.insert(0, str(Path(entry.path).relative_to(root)))
                except ValueError:
                    pass
            sentence = next((file_rationales[k] for k in keys if k in file_rationales), None)
        sentence = sentence or attribute_rationale(entry)
        if sentence is None:
            raise ValueError(f"no rationale for {entry.path}: it has no sentence in the file and no annotation "
                             "for a template")
        out.append(sentence)
    return out


class RationaleBase:
    """The distinct sentences and their (normalised) text embeddings; ``nearest`` finds the closest ones."""

    def __init__(self, sentences: Sequence[str], embeds: Tensor):
        if len(sentences) != embeds.shape[0] or len(set(sentences)) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences (distinct ones expected) for {embeds.shape[0]} embeddings")
        self.sentences = list(sentences)
        self.embeds = F.normalize(embeds.float(), dim=-1)

    @classmethod
    def from_text_encoder(cls, sentences: Sequence[str], encode) -> RationaleBase:
        """``encode``: a list of strings -> (N, E) text embeddings (e.g. ``uniemo.features.encode_texts``)."""
        distinct = list(dict.fromkeys(sentences))
        return cls(distinct, encode(distinct))

    def nearest(self, points: Tensor, k: int = 1) -> list[list[tuple[str, float]]]:
        """For each of (B, E) points (already in the base's space), the ``k`` closest sentences by cosine."""
        sims = F.normalize(points.float(), dim=-1) @ self.embeds.T
        values, index = sims.topk(min(k, len(self.sentences)), dim=-1)
        return [[(self.sentences[i], float(v)) for v, i in zip(vs, ix)] for vs, ix in zip(values.tolist(),
                                                                                          index.tolist())]

    def __len__(self) -> int:
        return len(self.sentences)
