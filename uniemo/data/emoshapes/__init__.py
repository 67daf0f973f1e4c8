"""EmoShapes: the procedural world in which UniEmo-Tiny is trained on a CPU (docs/method.md section 10).

Every image is a *scene* drawn as a background with one or more *objects* drawn on it. Its emotion is
a fixed rule of the two, so that the classifier's scene and object expert queries have something to
learn, and the set is written in EmoSet's on-disk layout (``info.json``, ``{train,val,test}.json``,
``image/<emotion>/<emotion>_NNNNN.jpg``, ``annotation/<emotion>/<emotion>_NNNNN.json``), so every
EmoSet code path runs on it unchanged.

The generator draws every object of an image from the same object group, so the emotion does not
depend on which object is "first". With probability ``label_noise`` the stored label is replaced by a
uniformly drawn *other* emotion; the annotation keeps the rule's label as ``true_emotion``.

The package, one concept a module:

    rule       the vocabularies, the emotion table, ``emotion_of``, captions, ``sample_composition``
    painters   one painter per scene and per object
    render     ``render``: a scene, its objects and the lighting, as one image
    writer     ``EmoShapesConfig``, the ``plan`` of a dataset, ``generate_emoshapes``, ``preview_grid``, the CLI

CLI: ``python -m uniemo.data.emoshapes --out DIR [--num-train N] [--seed S] [--image-size 64]``.
"""

from uniemo.data.emoshapes.painters import OBJECT_PAINTERS, SCENE_PAINTERS
from uniemo.data.emoshapes.render import MAX_OBJECTS_LIMIT, render
from uniemo.data.emoshapes.rule import (
    CELLS_OF,
    EMOTION_TABLE,
    OBJECT_GROUP_OF,
    OBJECT_GROUPS,
    OBJECTS,
    SCENE_GROUP_OF,
    SCENE_GROUPS,
    SCENES,
    caption_of,
    emotion_of,
    sample_composition,
    with_article,
)
from uniemo.data.emoshapes.writer import (
    SPLITS,
    EmoShapesConfig,
    PlannedImage,
    generate_emoshapes,
    main,
    plan,
    preview_grid,
)

__all__ = [
    "CELLS_OF",
    "EMOTION_TABLE",
    "MAX_OBJECTS_LIMIT",
    "OBJECTS",
    "OBJECT_GROUPS",
    "OBJECT_GROUP_OF",
    "OBJECT_PAINTERS",
    "SCENES",
    "SCENE_GROUPS",
    "SCENE_GROUP_OF",
    "SCENE_PAINTERS",
    "SPLITS",
    "EmoShapesConfig",
    "PlannedImage",
    "caption_of",
    "emotion_of",
    "generate_emoshapes",
    "main",
    "plan",
    "preview_grid",
    "render",
    "sample_composition",
    "with_article",
]
