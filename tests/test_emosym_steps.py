"""EmoSym's steps 1 and 2 end to end on the CPU: the tiny Qwen2-VL pretrained on EmoShapes captions (a few
steps), the tiny CLIP's text tower for the rule's rationales, step 1 (compression) and step 2 (reward) through
their command lines, and the model folders they write loaded back offline."""

import json

import pytest
import torch

from uniemo.constants import EMOTIONS
from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes
from uniemo.emosym.model_folder import explain, load_emosym
from uniemo.emosym.rationales import emoshapes_rationale
from uniemo.emosym.tiny_mllm import TinyMLLMConfig
from uniemo.emosym.tiny_pretrain import MLLMPretrainConfig, answer_labels, caption_prompt, pretrain_tiny_mllm
from uniemo.training.tiny_pretrain import read_split


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from uniemo.clip import build_tiny_clip

    root = tmp_path_factory.mktemp("emosym_world")
    data = generate_emoshapes(root / "emoshapes", EmoShapesConfig(num_train=64, num_val=16, num_test=8, seed=3,
                                                                  label_noise=0.0), progress=False)
    records = read_split(data, "train")
    log = []
    mllm = pretrain_tiny_mllm(MLLMPretrainConfig(steps=30, batch_size=16, lr=3e-3, warmup=5), TinyMLLMConfig(), 0,
                              records, root / "mllm", log.append)
    clip, tokenizer = build_tiny_clip(image_size=32, patch_size=8)
    clip.save_pretrained(root / "clip")
    tokenizer.save_pretrained(root / "clip")
    return {"root": root, "data": data, "mllm": mllm, "clip": root / "clip", "pretrain_log": log}


def test_caption_pretraining_masks_all_but_the_answer_and_learns(world):
    from transformers import AutoProcessor

    losses = [r["loss"] for r in world["pretrain_log"] if "loss" in r]
    assert losses[-1] < losses[0]
    processor = AutoProcessor.from_pretrained(world["mllm"])
    tok = processor.tokenizer
    ids = tok([caption_prompt("a skull in a cemetery")], return_tensors="pt")
    labels = answer_labels(ids["input_ids"], ids["attention_mask"], tok.convert_tokens_to_ids("<|im_start|>"))
    kept = labels[0][labels[0] != -100].tolist()
    assert tok.decode(kept) == "a skull in a cemetery<|im_end|>"


@pytest.fixture(scope="module")
def compressed(world):
    from train.emosym_compress import main

    out = world["root"] / "compress"
    final = main(["--preset", "tiny", f"data.root={world['data']}", f"model.mllm={world['mllm']}",
                  f"model.text_encoder={world['clip']}", "batch_size=16", "max_steps=8", "eval_every=4",
                  "log_every=1", f"out_dir={out}"])
    return out, final


def test_step1_writes_a_folder_that_explains_with_the_rules_sentences(world, compressed):
    out, final = compressed
    assert final["steps"] == 8 and 0 <= final["best_val_top1"] <= 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    terms = [r for r in records if "train/loss_nce" in r]
    assert len(terms) == 8 and all(r["train/loss_ce"] > 0 and r["train/loss_nce"] > 0 for r in terms)
    model, base, info = load_emosym(out / "final")
    assert info["step"] == "compress" and info["emotions"] == list(EMOTIONS)
    # the knowledge base is the rule's sentences of the training images
    train = read_split(world["data"], "train")
    assert set(base.sentences) == {emoshapes_rationale(r["scene"], r["objects"]) for r in train}
    from PIL import Image

    images = [Image.open(r["path"]) for r in train[:3]]
    probs, reasons = explain(model, base, images, k=2)
    assert probs.shape == (3, 8) and torch.allclose(probs.sum(1), torch.ones(3))
    assert all(len(r) == 2 and r[0][0] in base.sentences and r[0][1] >= r[1][1] for r in reasons)


def test_step1_leaves_the_base_mllm_as_it_was(world, compressed):
    out, _ = compressed
    from transformers import Qwen2VLForConditionalGeneration

    model, _, _ = load_emosym(out / "final")
    saved = dict(Qwen2VLForConditionalGeneration.from_pretrained(world["mllm"]).named_parameters())
    loaded = {n.replace("base_model.model.", "").replace(".base_layer", "").replace(".token_adapter", ""): p
              for n, p in model.mllm.named_parameters() if "lora_" not in n and "trainable_tokens" not in n}
    assert set(saved) == set(loaded)
    for name, tensor in saved.items():
        if name.endswith("embed_tokens.weight"):  # grown by the two token rows; the others are as saved
            assert torch.equal(loaded[name][:tensor.shape[0]], tensor)
            assert loaded[name].shape[0] == tensor.shape[0] + 2
        else:
            assert torch.equal(loaded[name], tensor), name
    lora_b = [p for n, p in model.mllm.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # and LoRA did learn


def test_step2_trains_against_the_frozen_step1_model(world, compressed):
    from train.emosym_reward import main

    out = world["root"] / "reward"
    final = main(["--preset", "tiny", f"data.root={world['data']}", f"model.init={compressed[0] / 'final'}",
                  "batch_size=16", "max_steps=4", "eval_every=2", "log_every=1", f"out_dir={out}"])
    assert final["steps"] == 4
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train/loss_kl" in r]
    assert len(steps) == 4
    assert steps[0]["train/loss_kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert all(r["train/loss_beta"] in (0.05, 0.1, 0.2) for r in steps)
    assert steps[0]["train/loss_beta"] == 0.2  # KL below 0.1
    _, _, info = load_emosym(out / "final")
    assert info["step"] == "reward" and info["init"] == str(compressed[0] / "final")


@pytest.fixture(scope="module")
def generating(world, compressed, tiny_sd_dir):
    from train.emosym_generate import main

    out = world["root"] / "generate"
    final = main(["--preset", "tiny", f"data.root={world['data']}", f"model.init={compressed[0] / 'final'}",
                  f"diffusion={tiny_sd_dir}", "resolution=32", "mapper_hidden=32", "batch_size=16", "max_steps=4",
                  "eval_every=4", "log_every=1", f"out_dir={out}"])
    return out, final


def test_step3_trains_the_mappers_and_tokens_only_and_fits_the_space(world, compressed, generating):
    from uniemo.emosym.model_folder import load_generation_parts

    out, final = generating
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train/loss_diffusion" in r]
    assert len(steps) == 4 and all(r["train/loss_diffusion"] > 0 and r["train/loss_ce"] > 0 for r in steps)
    model, _, info = load_emosym(out / "final")
    assert info["step"] == "generate" and info["resolution"] == 32 and "diffusion" in info
    mappers, space = load_generation_parts(out / "final")
    assert space.kinds == ("emo", "ctx") and space.num_components == 2 and space.emotions == tuple(EMOTIONS)
    assert mappers.config.hidden_size == model.hidden_size
    # LoRA is step 1's, untouched by step 3; the token rows and the head moved
    step1, _, _ = load_emosym(compressed[0] / "final")
    before, after = dict(step1.mllm.named_parameters()), dict(model.mllm.named_parameters())
    lora = [n for n in after if "lora_" in n]
    assert lora and all(torch.equal(after[n], before[n]) for n in lora)
    tokens = [n for n in after if "trainable_tokens_delta" in n]
    assert tokens and not all(torch.equal(after[n], before[n]) for n in tokens)
    assert not torch.equal(model.cls_head[0].weight, step1.cls_head[0].weight)
    with pytest.raises(FileNotFoundError, match="no mappers"):
        load_generation_parts(compressed[0] / "final")


def test_pipeline_answers_every_call_with_a_rationale(world, generating):
    from PIL import Image

    from uniemo.emosym.pipeline import EmoSymPipeline

    pipe = EmoSymPipeline.from_pretrained(generating[0] / "final")
    assert pipe.emotions == tuple(EMOTIONS)
    record = read_split(world["data"], "val")[0]
    prediction = pipe.classify(Image.open(record["path"]).convert("L"), top_rationales=2)
    assert abs(sum(prediction.probs.values()) - 1) < 1e-5 and prediction.label in EMOTIONS
    assert len(prediction.rationales) == 2 and prediction.scene_attention is None
    assert all(sentence in pipe.rationale_base.sentences for sentence, _ in prediction.rationales)
    fast = {"num_inference_steps": 2}
    images = pipe.generate("awe", num_images=2, seed=3, **fast)
    assert len(images) == 2 and images[0].size == (32, 32)
    # image i of a call with seed s is image 0 of a call with seed s + i
    again = pipe.generate("awe", num_images=1, seed=4, **fast)
    assert images[1].tobytes() == again[0].tobytes()
    assert len(pipe.transfer("fear", "skull", num_images=1, **fast)) == 1
    assert len(pipe.fuse("awe", "fear", 0.3, num_images=1, **fast)) == 1
    assert len(pipe.generate("awe", image=Image.open(record["path"]), **fast)) == 1
    with pytest.raises(ValueError, match="unknown emotion"):
        pipe.generate("boredom", **fast)


def test_pipeline_saves_a_folder_that_loads_back_and_answers_alike(world, generating, tmp_path):
    from PIL import Image

    from uniemo.emosym.pipeline import EmoSymPipeline

    pipe = EmoSymPipeline.from_pretrained(generating[0] / "final")
    pipe.save_pretrained(tmp_path / "copy")
    # the copy stands alone: its bases are inside it (the original pointed at the world's folders)
    info = json.loads((tmp_path / "copy" / "emosym.json").read_text())
    assert info["mllm"] == "mllm" and info["diffusion"] == "diffusion" and "path" not in info
    again = EmoSymPipeline.from_pretrained(tmp_path / "copy")
    image = Image.open(read_split(world["data"], "val")[0]["path"])
    first, second = pipe.classify(image), again.classify(image)
    assert first.label == second.label and first.rationales == second.rationales
    assert all(abs(first.probs[e] - second.probs[e]) < 1e-6 for e in first.probs)
    fast = {"num_inference_steps": 2}
    assert pipe.generate("awe", seed=5, **fast)[0].tobytes() == again.generate("awe", seed=5, **fast)[0].tobytes()


def test_the_demo_shows_an_emosym_model_with_its_rationales(world, generating):
    from demo import handlers
    from demo.ui import build_demo
    from uniemo.emosym.pipeline import EmoSymPipeline

    pipe = EmoSymPipeline.from_pretrained(generating[0] / "final")
    assert handlers.is_emosym(pipe) and handlers.trained_on_emoshapes(pipe)
    record = read_split(world["data"], "val")[0]
    result = handlers.classify_image(pipe, record["path"], top_attributes=2, folders=[world["data"]])
    assert abs(sum(result.probs.values()) - 1) < 1e-5
    assert [row[0] for row in result.attributes] == ["rationale", "rationale"]
    assert all(row[1] in pipe.rationale_base.sentences for row in result.attributes)
    assert result.scene_overlay.size == result.object_overlay.size
    about = handlers.about_markdown(pipe)
    assert "EmoSym" in about and "[EMO]" in about
    assert "knows only EmoShapes" in handlers.understand_notice(pipe)
    build_demo(pipe)  # the page builds


def test_step2_refuses_to_start_without_step1(world):
    from train.emosym_reward import main

    with pytest.raises((ValueError, SystemExit)):
        main(["--preset", "tiny", f"data.root={world['data']}", "out_dir=/nonexistent"])


def test_the_demo_adds_a_reasoner_rationales_to_a_uniemo_model(world, generating, tiny_model_dir):
    from demo import handlers
    from demo.ui import build_demo
    from uniemo import UniEmoPipeline
    from uniemo.emosym.pipeline import EmoSymPipeline

    pipe = UniEmoPipeline.from_pretrained(tiny_model_dir)
    reasoner = EmoSymPipeline.from_pretrained(generating[0] / "final")
    record = read_split(world["data"], "val")[0]
    alone = handlers.classify_image(pipe, record["path"], top_attributes=2, folders=[world["data"]])
    both = handlers.classify_image(pipe, record["path"], top_attributes=2, folders=[world["data"]],
                                   reasoner=reasoner)
    assert both.attributes[:len(alone.attributes)] == alone.attributes and both.probs == alone.probs
    added = both.attributes[len(alone.attributes):]
    label = reasoner.classify(record["path"]).label
    assert [row[0] for row in added] == [f"rationale (EmoSym: {label})"] * 2
    assert all(row[1] in reasoner.rationale_base.sentences for row in added)
    build_demo(pipe, reasoner)  # the page builds with both


def test_app_serves_the_two_bundles_together(monkeypatch, tmp_path, generating, tiny_model_dir):
    import gradio as gr

    import app
    import demo.ui
    from uniemo.emosym.pipeline import EmoSymPipeline

    seen = []
    build = demo.ui.build_demo
    monkeypatch.setattr(demo.ui, "build_demo",
                        lambda pipe, reasoner=None: seen.append(reasoner) or build(pipe, reasoner))
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: None)
    monkeypatch.delenv("UNIEMO_MODEL", raising=False)
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(app, "BUNDLED_MODEL", tiny_model_dir.resolve())
    monkeypatch.setattr(app, "BUNDLED_REASONER", generating[0] / "final")
    app.main(["--device", "cpu"])  # both bundled: the EmoSym folder is the reasoner
    app.main(["--device", "cpu", "--reasoner", "none"])
    assert isinstance(seen[0], EmoSymPipeline) and seen[1] is None
    with pytest.raises(SystemExit, match="EmoSym already"):
        app.main(["--model", str(generating[0] / "final"), "--reasoner", str(generating[0] / "final")])
    with pytest.raises(SystemExit, match="cannot load the reasoner"):
        app.main(["--reasoner", str(tmp_path / "nowhere")])
