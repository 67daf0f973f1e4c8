"""EmoShapes' rule: the vocabularies, the emotion table, captions and the sampling of compositions.

The 12 scenes fall into 4 scene groups (3 each) and the 16 objects into 4 object groups; the emotion is
``EMOTION_TABLE[scene group][object group of objects[0]]``::

                 festive      nature        threat      eerie
    cozy         amusement    contentment   disgust     sadness
    vast         excitement   awe           fear        contentment
    dark         sadness      fear          anger       amusement
    harsh        anger        disgust       excitement  awe

Each emotion fills exactly two cells, in different rows and different columns, so a scene alone
leaves four emotions possible and an object alone leaves four too; only the pair decides. Valence is
not decided by either alone either (every row and every column mixes positive and negative cells).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uniemo.constants import EMOTIONS

SCENE_GROUPS: dict[str, tuple[str, ...]] = {
    "cozy": ("room", "meadow", "library"),
    "vast": ("sky", "sea", "snow"),
    "dark": ("night_city", "cemetery", "forest"),
    "harsh": ("fire", "desert", "storm"),
}
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "festive": ("balloon", "cake", "gift", "heart"),
    "nature": ("flower", "sun", "tree", "butterfly"),
    "threat": ("knife", "spider", "snake", "bomb"),
    "eerie": ("skull", "ghost", "candle", "coffin"),
}
SCENES: tuple[str, ...] = tuple(s for group in SCENE_GROUPS.values() for s in group)
OBJECTS: tuple[str, ...] = tuple(o for group in OBJECT_GROUPS.values() for o in group)
SCENE_GROUP_OF: dict[str, str] = {s: g for g, members in SCENE_GROUPS.items() for s in members}
OBJECT_GROUP_OF: dict[str, str] = {o: g for g, members in OBJECT_GROUPS.items() for o in members}

# EMOTION_TABLE[scene group][object group] -> emotion; each emotion twice, in distinct rows and columns.
EMOTION_TABLE: dict[str, dict[str, str]] = {
    "cozy": {"festive": "amusement", "nature": "contentment", "threat": "disgust", "eerie": "sadness"},
    "vast": {"festive": "excitement", "nature": "awe", "threat": "fear", "eerie": "contentment"},
    "dark": {"festive": "sadness", "nature": "fear", "threat": "anger", "eerie": "amusement"},
    "harsh": {"festive": "anger", "nature": "disgust", "threat": "excitement", "eerie": "awe"},
}
# The inverse: the two (scene group, object group) cells of each emotion, in table order.
CELLS_OF: dict[str, tuple[tuple[str, str], ...]] = {
    e: tuple((sg, og) for sg, row in EMOTION_TABLE.items() for og, cell in row.items() if cell == e)
    for e in EMOTIONS
}


def emotion_of(scene: str, objects: Sequence[str]) -> str:
    """The rule's emotion of a composition (before label noise).

    Args:
        scene: one of ``SCENES``.
        objects: one or more of ``OBJECTS``; the first one is the "main" object the rule reads.

    Returns:
        An emotion name from ``EMOTIONS``.
    """
    if scene not in SCENE_GROUP_OF:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    if not objects:
        raise ValueError("emotion_of needs at least one object")
    if objects[0] not in OBJECT_GROUP_OF:
        raise ValueError(f"unknown object {objects[0]!r}; expected one of {', '.join(OBJECTS)}")
    return EMOTION_TABLE[SCENE_GROUP_OF[scene]][OBJECT_GROUP_OF[objects[0]]]


def with_article(noun: str) -> str:
    """``noun`` with its indefinite article: ``"a cake"``, ``"an owl"`` (by the first letter)."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def caption_of(scene: str, objects: Sequence[str]) -> str:
    """The composition as a caption, e.g. ``"a balloon and a cake in a room"``, ``"a skull in a cemetery"``.

    Underscores in names become spaces (``night_city`` -> ``"in a night city"``).
    """
    nouns = [with_article(o.replace("_", " ")) for o in objects]
    things = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
    return f"{things} in {with_article(scene.replace('_', ' '))}"


def sample_composition(rng: np.random.Generator, emotion: str, max_objects: int = 2) -> tuple[str, list[str]]:
    """Draw a (scene, objects) pair whose rule emotion is ``emotion``.

    One of the emotion's two table cells is chosen uniformly, then a scene of its scene group, then
    1..``max_objects`` distinct objects of its object group.
    """
    scene_group, object_group = CELLS_OF[emotion][int(rng.integers(2))]
    scene = SCENE_GROUPS[scene_group][int(rng.integers(len(SCENE_GROUPS[scene_group])))]
    count = int(rng.integers(1, max_objects + 1))
    members = OBJECT_GROUPS[object_group]
    objects = [members[int(i)] for i in rng.choice(len(members), size=count, replace=False)]
    return scene, objects
