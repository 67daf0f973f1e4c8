"""The EmoSym-Tiny builder end to end in smoke mode, on a small world (EmoShapes, a tiny CLIP, a tiny SD): the
bundle holds its MLLM, points at its SD, and loads offline as an EmoSymPipeline that answers every call."""

import json

import pytest

from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_sd_dir):
    import shutil

    from train.emosym_tiny import main
    from uniemo.clip import build_tiny_clip

    world = tmp_path_factory.mktemp("world")
    generate_emoshapes(world / "emoshapes", EmoShapesConfig(num_train=48, num_val=16, num_test=8, seed=5),
                       progress=False)
    clip, tokenizer = build_tiny_clip()
    clip.save_pretrained(world / "clip")
    tokenizer.save_pretrained(world / "clip")
    shutil.copytree(tiny_sd_dir, world / "sd")
    out = tmp_path_factory.mktemp("bundles") / "emosym-tiny"
    summary = main([f"world={world}", "--smoke", "--out", str(out), f"work_dir={world / 'work'}", "resolution=32"])
    return out, summary, world


def test_builder_writes_a_bundle_that_loads_and_answers(bundle):
    from uniemo.emosym.pipeline import EmoSymPipeline

    out, summary, world = bundle
    assert set(summary["timings_seconds"]) == {"mllm", "compress_and_reward", "generate", "reward_effect_seeds"}
    effect = summary["reward_effect"]  # seed 0 (the bundle's) and seed 1, test top-1 before/after step 2
    assert effect["seeds"] == [0, 1] and all(0 <= r[k] <= 1 for r in effect["runs"] for k in ("before", "after"))
    differences = [r["after"] - r["before"] for r in effect["runs"]]
    assert effect["difference"]["mean"] == pytest.approx(sum(differences) / 2)
    assert effect["difference"]["std"] == pytest.approx(abs(differences[0] - differences[1]) / 2 ** 0.5)
    assert json.loads((out / "build.json").read_text()) == json.loads(json.dumps(summary))
    info = json.loads((out / "emosym.json").read_text())
    assert info["mllm"] == "mllm" and info["diffusion"] == "diffusion" and info["builder"] == "train/emosym_tiny.py"
    pipe = EmoSymPipeline.from_pretrained(out)
    image = sorted((world / "emoshapes").rglob("*.jpg"))[0]
    prediction = pipe.classify(image)
    assert len(prediction.rationales) == 3 and prediction.label in pipe.emotions
    fast = {"num_inference_steps": 2}
    assert pipe.generate("awe", **fast)[0].size == (32, 32)
    assert len(pipe.transfer("fear", "skull", **fast)) == len(pipe.fuse("awe", "fear", 0.5, **fast)) == 1


def test_builder_refuses_a_world_without_its_parts(tmp_path):
    from train.emosym_tiny import main

    with pytest.raises(FileNotFoundError, match="work folder"):
        main([f"world={tmp_path}", "--smoke", "--out", str(tmp_path / "out")])


def test_builder_refuses_a_diffusion_path_that_is_not_there(bundle):
    from train.emosym_tiny import main

    _, _, world = bundle
    with pytest.raises(FileNotFoundError, match="not a diffusers folder"):
        main([f"world={world}", "--smoke", "--out", str(world / "out"), "diffusion_path=../nowhere"])
    with pytest.raises(ValueError, match="inside the bundle"):  # the build would delete it first
        main([f"world={world}", "--smoke", "--out", str(world / "out"), "diffusion_path=diffusion"])


def test_reward_effect_mean_and_spread_by_hand():
    from uniemo.training.emosym_tiny import reward_effect

    effect = reward_effect([{"seed": 0, "before": 0.5, "after": 0.6}, {"seed": 1, "before": 0.4, "after": 0.4},
                            {"seed": 2, "before": 0.3, "after": 0.5}])
    assert effect["before"]["mean"] == pytest.approx(0.4) and effect["before"]["std"] == pytest.approx(0.1)
    assert effect["difference"]["mean"] == pytest.approx(0.1) and effect["difference"]["std"] == pytest.approx(0.1)
    assert reward_effect([{"seed": 3, "before": 0.5, "after": 0.7}])["after"]["std"] is None
