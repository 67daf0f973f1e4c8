"""The bundled UniEmo-Tiny keeps loading and keeps its answers: probabilities, nearest attributes and α.

The numbers were taken from the 64-px bundle when it was installed (they change only when the bundle is
rebuilt); the folder's files (attributes.* and correlation.*) are read as they are. Probabilities must
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
        [0.741272, 0.00668028, 0.0158507, 0.00396339, 0.157386, 0.0295561, 0.00236705, 0.0429243],
        [("room", 0.77377), ("desert", 0.38952), ("fire", 0.21197)],
        [("cake", 0.63115), ("balloon", 0.58286), ("gift", 0.49548)],
    ),
    "fear_forest_tree.png": (
        [0.000913533, 0.00376771, 0.00232497, 0.000341841, 0.0398855, 0.00316515, 0.946106, 0.00349519],
        [("forest", 0.79809), ("meadow", 0.29588), ("sea", 0.094416)],
        [("tree", 0.73643), ("butterfly", 0.52704), ("flower", 0.3357)],
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
