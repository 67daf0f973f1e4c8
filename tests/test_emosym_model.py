"""EmoSym's reasoning model on a tiny Qwen2-VL (transformers' own classes, random weights): the two tokens are
added once, the heads read the last layer's hidden states at them, LoRA (peft) leaves every base weight as it
was, and each step's gradients reach exactly the parts it trains."""

import numpy as np
import pytest
import torch
from PIL import Image

from uniemo.emosym.losses import rationale_info_nce, reward_loss
from uniemo.emosym.mllm import (CTX_TOKEN, EMO_TOKEN, TRAINED, EmoSymModel, LoraSettings, add_reasoning_tokens,
                                apply_lora, prompt_text, token_positions)
from uniemo.emosym.tiny_mllm import TinyMLLMConfig, build_tiny_processor, build_tiny_qwen2vl

TEXTS = ["a balloon and a cake in a room", "a skull in a cemetery", "a spider in a dark forest"]


def _images(n, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    return [Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).convert(mode) for _ in range(n)]


def _model(seed=0, text_dim=16):
    processor = build_tiny_processor(TEXTS)
    mllm = build_tiny_qwen2vl(processor, seed=seed)
    ids = add_reasoning_tokens(processor, mllm)
    torch.manual_seed(seed)
    return EmoSymModel(apply_lora(mllm, ids, LoraSettings(r=4, alpha=8, dropout=0.0)), processor, ids, text_dim)


def test_tokens_are_added_once():
    processor = build_tiny_processor(TEXTS)
    mllm = build_tiny_qwen2vl(processor)
    before = len(processor.tokenizer)
    ids = add_reasoning_tokens(processor, mllm)
    assert len(processor.tokenizer) == before + 2
    assert mllm.get_input_embeddings().num_embeddings == before + 2
    assert add_reasoning_tokens(processor, mllm) == ids  # a second call adds nothing
    assert len(processor.tokenizer) == before + 2 == mllm.get_input_embeddings().num_embeddings
    # each is one token, never split, and the prompt holds each once, [CTX] then [EMO] at its end
    assert processor.tokenizer.tokenize(f"x{CTX_TOKEN}{EMO_TOKEN}")[-2:] == [CTX_TOKEN, EMO_TOKEN]
    encoded = processor.tokenizer(prompt_text())["input_ids"]
    assert encoded[-2:] == [ids[1], ids[0]] and encoded.count(ids[0]) == encoded.count(ids[1]) == 1


def test_token_positions_refuses_rows_without_exactly_one():
    assert token_positions(torch.tensor([[1, 5, 2], [5, 0, 0]]), 5).tolist() == [1, 0]
    with pytest.raises(ValueError, match="exactly once"):
        token_positions(torch.tensor([[5, 5, 2]]), 5)


def test_the_heads_read_the_hidden_states_at_the_two_tokens():
    model = _model()
    model.eval()
    batch = model.encode(_images(3) + _images(1, mode="L"))  # a greyscale image is converted, not refused
    with torch.no_grad():
        out = model(**batch)
        raw = model.mllm(**batch, output_hidden_states=True).hidden_states[-1]
    ids = batch["input_ids"]
    for row in range(4):
        emo = (ids[row] == model.emo_id).nonzero().item()
        ctx = (ids[row] == model.ctx_id).nonzero().item()
        torch.testing.assert_close(out.emo_hidden[row], raw[row, emo])
        torch.testing.assert_close(out.ctx_hidden[row], raw[row, ctx])
    torch.testing.assert_close(out.logits, model.cls_head(out.emo_hidden))
    assert out.logits.shape == (4, 8) and not torch.allclose(out.emo_hidden, out.ctx_hidden)


def _step_loss(model, step, batch, labels):
    out = model(**batch)
    if step == "compress":
        text = torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(5))
        nce = rationale_info_nce(out.ctx_hidden, model.project_rationales(text), [f"r{i}" for i in labels.tolist()])
        return 0.5 * torch.nn.functional.cross_entropy(out.logits, labels) + 0.5 * nce
    if step == "reward":
        return reward_loss(out.logits, out.logits.detach() + 0.3, labels).loss
    # generate: the mappers read both hidden states (a stand-in for them here), the head keeps its CE
    return torch.nn.functional.cross_entropy(out.logits, labels) + out.emo_hidden.pow(2).mean() \
        + out.ctx_hidden.pow(2).mean()


@pytest.mark.parametrize("step", sorted(TRAINED))
def test_gradients_reach_exactly_the_parts_each_step_trains(step):
    model = _model()
    with torch.no_grad():  # LoRA's B starts at zero, which would leave A without gradient: give B a value
        for p in model.parts()["lora"]:
            p.add_(0.05 * torch.randn_like(p))
    trained = model.set_trainable(step)
    batch = model.encode(_images(4))
    labels = torch.tensor([0, 3, 5, 7])
    _step_loss(model, step, batch, labels).backward()
    parts = model.parts()
    assert {id(p) for p in trained} == {id(p) for part in TRAINED[step] for p in parts[part]}
    for part, params in parts.items():
        assert params, part
        for p in params:
            if part in TRAINED[step]:
                assert p.grad is not None and p.grad.abs().sum() > 0, part
            else:
                assert p.grad is None and not p.requires_grad, part


def test_lora_training_leaves_every_base_weight_as_loaded():
    model = _model()
    base = {n: p.detach().clone() for n, p in model.mllm.named_parameters()
            if "lora_" not in n and "trainable_tokens" not in n}
    embedding = model.mllm.get_input_embeddings()
    rows_before = embedding(torch.tensor([model.emo_id, model.ctx_id])).detach().clone()
    params = model.set_trainable("compress")
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    batch, labels = model.encode(_images(4)), torch.tensor([1, 2, 3, 4])
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = _step_loss(model, "compress", batch, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name, p in model.mllm.named_parameters():
        if name in base:
            assert torch.equal(p, base[name]), name
    # the two token rows did move (through peft's trainable rows), the other rows did not
    rows_after = embedding(torch.tensor([model.emo_id, model.ctx_id]))
    assert not torch.allclose(rows_after, rows_before)
    other = torch.tensor([0, 1, 2, model.emo_id - 1])
    torch.testing.assert_close(embedding(other), embedding.token_adapter.base_layer(other))


def test_a_model_without_lora_refuses_steps_that_train_the_tokens():
    processor = build_tiny_processor(TEXTS)
    mllm = build_tiny_qwen2vl(processor)
    ids = add_reasoning_tokens(processor, mllm)
    with pytest.raises(ValueError, match="apply_lora first"):
        EmoSymModel(mllm, processor, ids, 16).set_trainable("compress")
    with pytest.raises(ValueError, match="unknown step"):
        EmoSymModel(mllm, processor, ids, 16).set_trainable("rl")


def test_tiny_config_checks_the_rope_split():
    processor = build_tiny_processor(TEXTS)
    with pytest.raises(ValueError, match="mrope_section"):
        build_tiny_qwen2vl(processor, TinyMLLMConfig(mrope_section=(2, 2, 2)))


def test_limit_image_pixels_caps_the_image_tokens(tmp_path):
    from transformers import AutoProcessor

    from uniemo.emosym.mllm import limit_image_pixels

    processor = build_tiny_processor(TEXTS, TinyMLLMConfig(image_size=64))
    processor.image_processor.size = {"shortest_edge": 16 * 16, "longest_edge": 128 * 128}
    image = Image.new("RGB", (128, 96))
    before = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].prod()
    limit_image_pixels(processor, 64 * 64)
    after = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].prod()
    assert after < before and after * 8 * 8 <= 64 * 64
    processor.save_pretrained(tmp_path)  # the cap travels with the saved processor
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].prod() == after
    with pytest.raises(ValueError, match="below the processor's minimum"):
        limit_image_pixels(processor, 8)


def test_the_card_names_hub_bases_only_and_says_whether_the_folder_generates():
    from uniemo.emosym.model_folder import emosym_card

    hub = {"mllm": "Qwen/Qwen2-VL-2B-Instruct", "diffusion": "stable-diffusion-v1-5/stable-diffusion-v1-5",
           "emotions": ["awe", "fear"], "step": "generate"}
    card = emosym_card(hub)
    assert card.data.base_model == [hub["mllm"], hub["diffusion"]] and card.data.pipeline_tag == "text-to-image"
    local = emosym_card({"mllm": "mllm", "emotions": ["awe"], "step": "compress"})
    assert local.data.base_model is None and local.data.pipeline_tag == "image-classification"
    assert "pipe.generate" not in local.text and "EmoSymPipeline.from_pretrained" in local.text
