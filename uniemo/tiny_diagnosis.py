"""Where a UniEmo-Tiny emotion is lost on the way from the emotion space to the image.

EmoShapes decides an image's emotion by one rule: the pair (scene group, object group), each emotion filling two
cells of the 4 x 4 table. An emotion can therefore fail to be generated at four places, and each measurement
below isolates one of them (the bundle's own classifier judges every image; the tiny CLIP names the scene and the
object it sees, zero-shot):

1. ``generated``: the pipeline as the demo runs it (emotion space -> α -> mappers -> SD). What is drawn instead:
   the classifier's verdicts and the (scene, object) cell the tiny CLIP reads in the image.
2. ``captions``: the tiny SD alone, prompted with EmoShapes captions of the emotion's two cells ("a balloon in a
   room"). Can the generator draw the emotion at all, when told the scene and the object in words?
3. ``condition_head``: conditions c sampled from the emotion space, read back by the condition head of Eq. 7.
   Does c still carry the emotion before it reaches the text encoder?
4. ``from_real_images``: conditions from real images of the emotion (``generate(image=...)``): no emotion space.
   Does a good condition give the emotion when the emotion space is taken out of the path?

Each section reports recognition per emotion (the share the classifier gives the intended emotion) and, for 1 and
2, the cells the tiny CLIP reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from PIL import Image

from uniemo.data.emoshapes import (CELLS_OF, EMOTION_TABLE, OBJECT_GROUP_OF, OBJECT_GROUPS, SCENE_GROUP_OF,
                                   SCENE_GROUPS, caption_of)
from uniemo.data.images import open_image
from uniemo.diffusion import encode_prompt
from uniemo.sampling import render
from uniemo.tiny_judges import TinyClipJudge


class CellJudge:
    """The tiny CLIP's zero-shot reading of an image's scene and object, and the rule's emotion of that cell."""

    def __init__(self, clip_dir, scenes: Sequence[str], objects: Sequence[str]):
        self.scenes, self.objects = list(scenes), list(objects)
        # one judge over all names: the CLIP is loaded once and each image embedded once
        self.judge = TinyClipJudge(clip_dir, self.scenes + self.objects, "{}")

    def __call__(self, images: Sequence[Image.Image]) -> list[tuple[str, str, str]]:
        """(scene group, object group, the rule's emotion of that cell) per image."""
        sims = self.judge.similarities(images)
        n = len(self.scenes)
        scenes = [self.scenes[i] for i in sims[:, :n].argmax(1).tolist()]
        objects = [self.objects[i] for i in sims[:, n:].argmax(1).tolist()]
        out = []
        for scene, obj in zip(scenes, objects):
            sg, og = SCENE_GROUP_OF[scene], OBJECT_GROUP_OF[obj]
            out.append((sg, og, EMOTION_TABLE[sg][og]))
        return out


CALL = 8  # images per pipeline call


def _verdicts(pipe, images: Sequence[Image.Image]) -> list[str]:
    return [pipe.classify(image).label for image in images]


def _summary(intended: str, verdicts: list[str], cells: list[tuple[str, str, str]] | None = None) -> dict:
    n = len(verdicts)
    out = {"recognised": sum(v == intended for v in verdicts) / n,
           "classified_as": {k: v / n for k, v in Counter(verdicts).most_common()}}
    if cells is not None:
        own = {f"{sg}+{og}" for sg, og in CELLS_OF[intended]}
        read = [f"{sg}+{og}" for sg, og, _ in cells]
        out["cells_read"] = {k: v / n for k, v in Counter(read).most_common(4)}
        out["cell_of_the_emotion"] = sum(r in own for r in read) / n
        out["scene_group_of_the_emotion"] = sum(sg in {c[0] for c in CELLS_OF[intended]} for sg, _, _ in cells) / n
        out["object_group_of_the_emotion"] = sum(og in {c[1] for c in CELLS_OF[intended]} for _, og, _ in cells) / n
        out["rule_emotion_of_the_cells_read"] = {k: v / n for k, v in Counter(e for _, _, e in cells).most_common(3)}
    return out


@torch.no_grad()
def generated(pipe, judge: CellJudge, per_emotion: int, seed: int) -> dict:
    """1: the pipeline's images of each emotion (the model's own sampler settings)."""
    result = {}
    for e in pipe.emotions:
        images = [im for start in range(0, per_emotion, CALL)
                  for im in pipe.generate(e, num_images=min(CALL, per_emotion - start), seed=seed + start)]
        result[e] = _summary(e, _verdicts(pipe, images), judge(images))
    return result


@torch.no_grad()
def from_captions(pipe, judge: CellJudge, per_emotion: int, seed: int) -> dict:
    """2: the tiny SD prompted with captions of the emotion's cells (half the images per cell; the first scene and
    the first object of each group), CFG as the model recommends."""
    negative = pipe._negative_embeds()
    result = {}
    for e in pipe.emotions:
        captions = []
        for k in range(per_emotion):
            sg, og = CELLS_OF[e][k % 2]
            scenes, objects = SCENE_GROUPS[sg], OBJECT_GROUPS[og]
            captions.append(caption_of(scenes[(k // 2) % len(scenes)], [objects[(k // 2) % len(objects)]]))
        images = []
        for start in range(0, per_emotion, CALL):
            chunk = captions[start:start + CALL]
            embeds = encode_prompt(pipe.sd.text_encoder, pipe.sd.tokenizer, chunk)
            images += render(pipe.sd, embeds, negative, seed + start, pipe._settings(len(chunk), None, None, None),
                             None)
        summary = _summary(e, _verdicts(pipe, images), judge(images))
        summary["captions"] = sorted(set(captions))[:4]
        result[e] = summary
    return result


@torch.no_grad()
def condition_head(pipe, per_emotion: int, seed: int) -> dict:
    """3: the condition head's reading of conditions sampled from each emotion's Gaussian."""
    result = {}
    for i, e in enumerate(pipe.emotions):
        c = pipe.condition(e, per_emotion, seed=seed)
        predicted = pipe.fusion.condition_logits(c.to(pipe.fusion.condition_head.weight.dtype)).argmax(-1)
        result[e] = {"recognised": (predicted == i).float().mean().item()}
    return result


@torch.no_grad()
def from_real_images(pipe, dataset, per_emotion: int, seed: int) -> dict:
    """4: one image per real test image of the emotion, conditioned on that image's own features."""
    result = {}
    by_label: dict[int, list[int]] = {}
    for index, entry in enumerate(dataset.entries):
        by_label.setdefault(entry.label, []).append(index)
    for i, e in enumerate(pipe.emotions):
        images = []
        for k, index in enumerate(by_label.get(i, [])[:per_emotion]):
            reference = open_image(dataset.entries[index].path)
            images += pipe.generate(e, num_images=1, seed=seed + k, image=reference)
        if images:
            result[e] = _summary(e, _verdicts(pipe, images))
    return result


@torch.no_grad()
def nearest_means(pipe) -> dict:
    """5: for each emotion, the other emotion whose Gaussian mean lies closest (cosine) in the scene and object
    embeddings (concatenated), and in the CLS embedding. Two emotions whose two cells share scene and object groups
    crosswise (amusement: cozy+festive, dark+eerie; sadness: cozy+eerie, dark+festive) have the same average scene
    and the same average object: a one-Gaussian space cannot keep them apart there."""
    space = pipe.emotion_space
    emotions = list(space.emotions)

    def nearest(kinds):
        means = torch.nn.functional.normalize(torch.cat([space.means[k].float() for k in kinds], dim=1), dim=1)
        sims = means @ means.t()
        sims.fill_diagonal_(-2.0)
        return {e: {"nearest": emotions[int(sims[i].argmax())], "cosine": float(sims[i].max())}
                for i, e in enumerate(emotions)}

    return {"scene_and_object": nearest(("scene", "object")), "cls": nearest(("cls",))}
