"""The bundled UniEmo-Tiny keeps loading and keeps its answers: probabilities, nearest attributes and α.

The numbers were taken with the code before ``AttributeTargets`` and ``CorrelationTable`` shared one
``AttributeBase``; the folder's files (attributes.* and correlation.*) are read as they are. Probabilities must
agree to float32 rounding, the nearest names exactly, their cosines to 1e-5 (the base now renormalises both
sides, which moves a cosine by at most one float32 step).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from uniemo.attributes import AttributeBase
from uniemo.pipeline import UniEmoPipeline

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "assets" / "uniemo-tiny"
EXAMPLES = ROOT / "assets" / "examples"

# example -> (probabilities in the model's emotion order, top-3 scenes with cosines, top-3 objects with cosines)
PINNED = {
    "amusement_room_balloon_cake.png": (
        [0.711839, 0.007781, 0.012152, 0.005172, 0.19204, 0.024553, 0.001672, 0.044791],
        [("room", 0.7631), ("desert", 0.40514), ("fire", 0.20907)],
        [("cake", 0.66385), ("balloon", 0.62845), ("gift", 0.52162)],
    ),
    "fear_forest_tree.png": (
        [0.00123, 0.00387, 0.002995, 0.000339, 0.036808, 0.002576, 0.948414, 0.00377],
        [("forest", 0.80081), ("meadow", 0.29947), ("sea", 0.11548)],
        [("tree", 0.75344), ("butterfly", 0.51083), ("snake", 0.38545)],
    ),
}

pytestmark = pytest.mark.skipif(not (BUNDLED / "uniemo.json").is_file(), reason="no bundled model")


@pytest.fixture(scope="module")
def pipe():
    return UniEmoPipeline.from_pretrained(BUNDLED)


@pytest.mark.parametrize("example", sorted(PINNED))
def test_bundled_model_classifies_as_before(pipe, example):
    probs, scenes, objects = PINNED[example]
    pred = pipe.classify(Image.open(EXAMPLES / example), top_attributes=3)
    torch.testing.assert_close(torch.tensor(list(pred.probs.values())), torch.tensor(probs), rtol=0, atol=2e-6)
    for got, want in ((pred.scene_attributes, scenes), (pred.object_attributes, objects)):
        assert [name for name, _ in got] == [name for name, _ in want]
        torch.testing.assert_close(torch.tensor([s for _, s in got]), torch.tensor([s for _, s in want]),
                                   rtol=0, atol=1e-5)


def test_attributes_and_table_are_one_base_class_with_the_same_answers(pipe):
    """Both holders of the bundled folder's attribute base answer through ``AttributeBase``, and agree."""
    attributes, table = pipe.attributes, pipe.correlation
    assert isinstance(attributes, AttributeBase) and isinstance(table.base, AttributeBase)
    assert (attributes.scenes, attributes.objects) == (table.scene_names, table.object_names)
    generator = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(5, attributes.embed_dim, generator=generator), dim=-1)
    for kind in ("scene", "object"):
        assert attributes.nearest(points, kind, 4) == table.nearest(points, kind, 4)
    scene_idx, object_idx, _, _ = table.match(points, points)
    top_scenes, top_objects = (attributes.nearest(points, kind, 1) for kind in ("scene", "object"))
    assert [attributes.scenes[i] for i in scene_idx] == [row[0][0] for row in top_scenes]
    assert [attributes.objects[i] for i in object_idx] == [row[0][0] for row in top_objects]
