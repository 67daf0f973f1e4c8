"""The bundled EmoSym-Tiny loads offline, beside UniEmo-Tiny whose Stable Diffusion it shares, and answers every
call: classify with its rationales, generate, transfer and fuse; its report is the README's table.

The pinned labels were taken from the bundle when it was installed (they change only when it is rebuilt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uniemo.emosym.rationales import CELL_MEANING
from uniemo.training.tiny_world_config import TINY_SAMPLER

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "emosym-tiny"
EXAMPLES = ROOT / "assets" / "examples"
# example -> the bundle's label
PINNED = {"amusement_room_balloon_cake.png": "amusement", "fear_forest_tree.png": "fear"}

pytestmark = pytest.mark.skipif(not (BUNDLE / "emosym.json").is_file(), reason="no bundled EmoSym-Tiny")


@pytest.fixture(scope="module")
def pipe():
    from uniemo.emosym.pipeline import EmoSymPipeline

    return EmoSymPipeline.from_pretrained(BUNDLE)


def test_the_bundle_shares_uniemo_tiny_sd_and_its_sampling():
    info = json.loads((BUNDLE / "emosym.json").read_text())
    assert info["diffusion"] == "../uniemo-tiny/diffusion" and info["mllm"] == "mllm"
    assert info["sampler"] == TINY_SAMPLER and info["resolution"] == 64
    assert (BUNDLE / info["diffusion"] / "model_index.json").is_file()
    # small: the MLLM, adapter, heads, mappers and rationales only
    assert sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file()) < 5e6


@pytest.mark.parametrize("example", sorted(PINNED))
def test_classify_answers_with_the_rule_rationales(pipe, example):
    prediction = pipe.classify(EXAMPLES / example, top_rationales=3)
    assert prediction.label == PINNED[example]
    assert abs(sum(prediction.probs.values()) - 1) < 1e-5
    # sentences of the base, each "a {object} in a {scene}: " and what EmoShapes' rule makes of that cell
    assert len(prediction.rationales) == 3
    assert all(s in pipe.rationale_base.sentences for s, _ in prediction.rationales)
    assert all(s.split(": ", 1)[1] in set(CELL_MEANING.values()) for s, _ in prediction.rationales)
    cosines = [c for _, c in prediction.rationales]
    assert cosines == sorted(cosines, reverse=True)


def test_generate_transfer_and_fuse_make_64_px_images(pipe):
    fast = {"num_inference_steps": 4}
    images = [*pipe.generate("awe", num_images=2, **fast), *pipe.transfer("fear", "skull", **fast),
              *pipe.fuse("amusement", "sadness", 0.5, **fast)]
    assert len(images) == 4 and all(im.size == (64, 64) for im in images)
    assert images[0].tobytes() != images[1].tobytes()


def test_readme_quotes_the_side_by_side_report():
    """The README's EmoSym table is the one eval/emosym_report.py renders from the two bundles' reports."""
    from eval.emosym_report import README_END, README_START, render_markdown
    from uniemo.readme_block import quoted_block

    report = json.loads((BUNDLE / "report.json").read_text())
    uniemo = json.loads((ROOT / "assets" / "uniemo-tiny" / "report.json").read_text())
    assert report["transfer"]["first_seed"] == uniemo["transfer"]["first_seed"]
    assert report["generation"]["per_emotion"] == uniemo["generation"]["per_emotion"]
    readme = (ROOT / "README.md").read_text()
    assert quoted_block(readme, README_START, README_END) == render_markdown(report, uniemo).strip()


def test_the_report_refuses_a_uniemo_report_from_other_seeds():
    from eval.emosym_report import check_same_seeds, parse_args

    uniemo = json.loads((ROOT / "assets" / "uniemo-tiny" / "report.json").read_text())
    args = parse_args(["--data-root", "x", "--transfer-seed", str(uniemo["transfer"]["first_seed"] + 1)])
    with pytest.raises(ValueError, match="same"):
        check_same_seeds(uniemo, args)
