"""UniEmo-Tiny: the bundled model answers offline, and the whole from-nothing build runs (--smoke)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"
# floors of the quarter-size rerun below, about two standard errors under what it measured for this bundle
# (62.5 % of 64 transfer images show their noun, 75.0 % of 32 generations their emotion); chance 6.25 / 12.5 %
NOUN_FLOOR = 0.5
EMOTION_FLOOR = 0.6


@pytest.fixture(scope="module")
def bundle():
    if not (BUNDLE / "uniemo.json").is_file():
        pytest.fail(f"the bundled model is missing at {BUNDLE}: build it with python -m train.tiny_world")
    from uniemo import UniEmoPipeline

    return UniEmoPipeline.from_pretrained(BUNDLE)


def test_bundle_is_small_and_complete():
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size < 40e6, f"the bundle is {size / 1e6:.1f} MB"
    info = json.loads((BUNDLE / "uniemo.json").read_text())
    assert {"classifier", "fusion", "emotion_space", "correlation", "diffusion"} <= set(info["components"])
    assert not list(BUNDLE.rglob("*.bin")) and not list(BUNDLE.rglob("*.pt")), "only safetensors and JSON"


def test_bundle_recognises_fresh_emoshapes_images(bundle, tmp_path):
    """Images the model never saw (another seed of the world) are classified far above chance (12.5 %)."""
    from uniemo.data import build_dataset
    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes

    root = generate_emoshapes(tmp_path / "fresh", EmoShapesConfig(num_train=8, num_val=8, num_test=80, seed=12345,
                                                                  label_noise=0.0), progress=False)
    test = build_dataset("emoshapes", root, "test")
    hits = sum(bundle.classify(test[i]["pixel_values"]).label == test.labels[test.entries[i].label]
               for i in range(len(test)))
    assert hits / len(test) >= 0.6, hits / len(test)


def test_bundle_answers_every_call_offline(bundle):
    from PIL import Image

    pred = bundle.classify(Image.new("RGB", (64, 64), (200, 40, 40)))
    assert abs(sum(pred.probs.values()) - 1) < 1e-5 and pred.scene_attention.shape == (8, 8)
    for images in (bundle.generate("awe", num_images=2, seed=0, num_inference_steps=4),
                   bundle.transfer("fear", bundle.attributes.objects[0], seed=0, num_inference_steps=4),
                   bundle.fuse("amusement", "sadness", weight=0.5, seed=0, num_inference_steps=4)):
        assert images and all(isinstance(im, Image.Image) for im in images)
    a = bundle.generate("awe", seed=7, num_inference_steps=4)[0]
    b = bundle.generate("awe", seed=7, num_inference_steps=4)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_transfer_draws_the_part_of_the_emotion_nearest_the_noun(bundle):
    """With two Gaussians per emotion (one per EmoShapes cell), transfer draws from the part whose objects are
    the noun's group whenever one of the emotion's cells has that group: the part the classifier's object
    projection puts nearest the noun's text embedding."""
    from uniemo.data.emoshapes import CELLS_OF, OBJECT_GROUP_OF

    space = bundle.emotion_space
    assert space.num_components == 2
    checked = 0
    for e in bundle.emotions:
        # each part's cell: the object group its mean object embedding is nearest to, through the classifier
        for noun in bundle.attributes.objects:
            groups = [og for _, og in CELLS_OF[e]]
            if OBJECT_GROUP_OF[noun] not in groups:
                continue
            part = bundle.component_for_noun(e, noun)
            mean = space.components["means"]["object"][bundle.emotions.index(e)][part]
            points = torch.nn.functional.normalize(bundle.classifier.object_proj(mean[None]), dim=-1)
            nearest = bundle.attributes.nearest(points, "object", 1)[0][0][0]
            assert OBJECT_GROUP_OF[nearest] == OBJECT_GROUP_OF[noun], (e, noun, nearest)
            checked += 1
    assert checked == 8 * 8  # every emotion has two cells, four nouns each
    assert bundle.component_for_noun("awe", "unicorn") is None  # not in the attribute base: drawn by weight


@pytest.mark.slow
def test_bundle_generates_its_emotions_and_transfers_its_nouns(bundle):
    """A quarter-size rerun of the report's generation and transfer checks, with the bundle's own judges.

    The report (512 transfer images on seeds 100-103, 128 generations) is the number of record; this reruns
    a slice of it (64 transfer images at seed 100, four emotions per noun; 32 generations), so that a change
    which breaks what the bundle draws fails here.
    """
    from uniemo.tiny_judges import TinyClipJudge

    objects = list(bundle.attributes.objects)
    judge = TinyClipJudge(BUNDLE / "clip", objects, "a {}")  # the report's judge and template

    noun_hits = 0
    for i, noun in enumerate(objects):  # half the emotions per noun, alternating, so every pair's half is covered
        images = [bundle.transfer(e, noun, seed=100)[0] for e in bundle.emotions[i % 2::2]]
        noun_hits += int((judge(images) == objects.index(noun)).sum())
    noun_rate = noun_hits / (len(objects) * len(bundle.emotions) // 2)
    emotion_hits = sum(bundle.classify(im).label == e for e in bundle.emotions
                       for im in bundle.generate(e, num_images=4, seed=0))
    emotion_rate = emotion_hits / (4 * len(bundle.emotions))
    assert noun_rate >= NOUN_FLOOR, f"transfer shows the noun in {noun_rate:.1%} of 64 images"
    assert emotion_rate >= EMOTION_FLOOR, f"generation recognised as its emotion in {emotion_rate:.1%} of 32"


def test_report_numbers_are_recorded():
    report = json.loads((BUNDLE / "report.json").read_text())
    assert report["classification"]["test_top1"] >= 0.85
    assert "test_top1_without_expert_queries" in report["classification"]
    for key in ("recognised_by_classifier", "recognised_by_probe", "recognised_from_reference_images"):
        assert 0.0 <= report["generation"][key] <= 1.0
    # what the bundle must show: generations recognised as their emotion by both judges, transfer showing
    # the noun, each measured on the seeds the report names
    generation, transfer = report["generation"], report["transfer"]
    assert generation["recognised_by_classifier"] >= 0.7 and generation["recognised_by_probe"] >= 0.6
    for judge in ("per_emotion_by_classifier", "per_emotion_by_probe"):  # every emotion, by both judges
        assert min(generation[judge].values()) >= 0.4, generation[judge]
    assert generation["per_emotion"] >= 16
    assert transfer["emotion_recognised_where_the_rule_allows_it"] >= 0.4
    classification = report["classification"]
    assert classification["test_top1"] >= 0.9 and classification["fresh_set_top1"] >= 0.9
    assert classification["fresh_set_seed"] != 0  # another seed than the build's EmoShapes
    for key in ("object_recognised", "neutral_object_recognised", "emotion_recognised_by_classifier",
                "emotion_recognised_where_the_rule_allows_it", "emotion_recognised_where_the_rule_forbids_it"):
        assert 0.0 <= transfer[key] <= 1.0
    # the bundle's recommended sampler is what the report measured with
    info = json.loads((BUNDLE / "uniemo.json").read_text())
    assert report["sampler"] == info["sampler"]


@pytest.mark.xfail(strict=True, reason="not met by the 64-px bundle: transfer shows the noun in 67.0 % of the "
                   "report's images (the bar is 70 %), the plain tiny SD prompted with the noun in 69.1 %")
def test_report_transfer_shows_the_noun_in_70_percent():
    """What the bundle must show, and does not yet: the noun in at least 70 % of transfer images (report seeds).
    Strict: once a bundle meets it, this test fails until the mark is removed."""
    report = json.loads((BUNDLE / "report.json").read_text())
    assert report["transfer"]["object_recognised"] >= 0.7


def test_readme_quotes_the_report():
    """The README's table is the one eval/tiny_report.py renders from the bundle's report.json."""
    from eval.tiny_report import README_END, README_START, render_markdown
    from uniemo.readme_block import quoted_block

    report = json.loads((BUNDLE / "report.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert quoted_block(readme, README_START, README_END) == render_markdown(report).strip()


@pytest.mark.slow
def test_smoke_build_from_nothing(tmp_path):
    """The same steps as the full build with tiny step counts: data, CLIP, SD, stage 1, probe, stage 2."""
    from train.tiny_world import main
    from uniemo import UniEmoPipeline

    out = tmp_path / "bundle"
    summary = main(["--smoke", "--out", str(out), f"work_dir={tmp_path / 'work'}", "threads=2"])
    assert set(summary["timings_seconds"]) >= {"emoshapes", "clip", "sd", "stage1", "probe", "joint"}
    pipe = UniEmoPipeline.from_pretrained(out)
    assert len(pipe.generate("fear", num_images=1, num_inference_steps=2)) == 1
    assert (out / "clip" / "config.json").is_file() and (out / "probe" / "model.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "work" / "tiny_world.jsonl").read_text().splitlines()]
    assert log[-1]["phase"] == "done"

    # resumed with stage 1's settings changed: data, CLIP, SD and the probe are reused, the rest is redone
    before = (tmp_path / "work" / "clip" / "model.safetensors").stat().st_mtime_ns
    main(["--smoke", "--out", str(out), f"work_dir={tmp_path / 'work'}", "threads=2", "resume=true",
          "uniemo.stage1_epochs=1"])
    log = [json.loads(line) for line in (tmp_path / "work" / "tiny_world.jsonl").read_text().splitlines()]
    run2 = log[len(log) - 1 - [r["phase"] for r in reversed(log)].index("emoshapes"):]
    assert {r["phase"] for r in run2 if r.get("reused")} == {"emoshapes", "clip", "sd", "probe"}
    assert {"stage1", "stage1_no_queries", "joint"} <= {r["phase"] for r in run2 if "seconds" in r}
    assert (tmp_path / "work" / "clip" / "model.safetensors").stat().st_mtime_ns == before
    assert len(UniEmoPipeline.from_pretrained(out).generate("awe", num_images=1, num_inference_steps=2)) == 1


@pytest.mark.slow
def test_smoke_build_at_64_px(tmp_path):
    """The build at EmoShapes' own 64 px: a three-block VAE (64 px -> 16 x 16 latents, as 32 px -> 16 x 16 with
    two blocks), stage 2 at 64 px, and a model folder whose every call answers 64-px images."""
    from train.tiny_world import main
    from uniemo import UniEmoPipeline

    out = tmp_path / "bundle"
    main(["--smoke", "--out", str(out), f"work_dir={tmp_path / 'work'}", "threads=2", "ablation=false",
          "sd.resolution=64", "sd.vae_channels=[32,64,64]"])
    pipe = UniEmoPipeline.from_pretrained(out)
    assert pipe.resolution == 64
    assert pipe.sd.vae.config.block_out_channels == [32, 64, 64]
    for images in (pipe.generate("fear", num_inference_steps=2), pipe.transfer("awe", "cake", num_inference_steps=2),
                   pipe.fuse("amusement", "anger", 0.5, num_inference_steps=2)):
        assert images[0].size == (64, 64)


def test_step_signatures_follow_what_each_step_reads():
    from train.tiny_world import step_signatures
    from uniemo.training.tiny_world_config import TinyWorldConfig as Config
    from uniemo.config import merge_into

    base = step_signatures(Config())
    sd = step_signatures(merge_into(Config(), {"sd": {"unet_steps": 7}}))
    assert [k for k in base if base[k] != sd[k]] == ["sd"]  # stage 1 and the probe do not read the SD
    clip = step_signatures(merge_into(Config(), {"clip": {"steps": 7}}))
    assert [k for k in base if base[k] == clip[k]] == ["emoshapes"]
    world = step_signatures(merge_into(Config(), {"seed": 1}))
    assert all(base[k] != world[k] for k in base)
    assert step_signatures(merge_into(Config(), {"out": "elsewhere", "threads": 1})) == base
    stage2 = {"uniemo": {"joint_steps": 7, "joint_overrides": ["optim.lr_mappers=3e-3"]}}
    assert step_signatures(merge_into(Config(), stage2)) == base  # stage 2 alone changed: every step is kept
    probe = step_signatures(merge_into(Config(), {"uniemo": {"probe_epochs": 7}}))
    assert [k for k in base if base[k] != probe[k]] == ["probe"]


# ---------------------------------------------------------------------------- the texts the towers are trained on

RECORD = {"scene": "night_city", "objects": ["balloon", "apple_pie"], "caption": "a balloon and an apple pie in a night city"}


def test_caption_variants_by_hand():
    from uniemo.training.tiny_pretrain import caption_variant

    assert caption_variant(RECORD, "caption") == RECORD["caption"]
    assert caption_variant(RECORD, "scene") == "night city"
    assert caption_variant(RECORD, "a_object", 0) == "a balloon"
    assert caption_variant(RECORD, "a_object", 1) == "an apple pie"
    assert caption_variant(RECORD, "object", 3) == "apple pie"  # object number taken modulo their count
    with pytest.raises(ValueError, match="unknown text kind"):
        caption_variant(RECORD, "colour")


def test_describes_marks_every_true_text_as_a_positive():
    from uniemo.training.tiny_pretrain import describes

    assert describes("caption", RECORD["caption"], RECORD)
    assert not describes("caption", "a balloon in a night city", RECORD)  # a caption names all the objects
    assert describes("a_object", "an apple pie", RECORD) and describes("object", "balloon", RECORD)
    assert not describes("a_object", "a skull", RECORD) and not describes("object", "a balloon", RECORD)
    assert describes("scene", "night city", RECORD) and not describes("scene", "room", RECORD)


def test_sample_texts_follows_the_mix():
    import torch

    from uniemo.training.tiny_pretrain import TEXT_KINDS, sample_texts

    idx = torch.zeros(4000, dtype=torch.long)
    texts = sample_texts([RECORD], idx, (0.5, 0.0, 0.25, 0.25), torch.Generator().manual_seed(0))
    share = {k: sum(kind == k for kind, _ in texts) / len(texts) for k in TEXT_KINDS}
    assert share["a_object"] == 0 and abs(share["caption"] - 0.5) < 0.03 and abs(share["scene"] - 0.25) < 0.03
    objects = [t for kind, t in texts if kind == "object"]
    assert abs(objects.count("balloon") / len(objects) - 0.5) < 0.05  # both objects drawn equally often
    with pytest.raises(ValueError, match="text_mix"):
        sample_texts([RECORD], idx, (1.0, 0.0), torch.Generator())
    # captions only draws nothing: the batches stay those of a build without the short kinds
    g = torch.Generator().manual_seed(5)
    assert sample_texts([RECORD], idx[:3], (1.0, 0.0, 0.0, 0.0), g) == [("caption", RECORD["caption"])] * 3
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(5).get_state())
