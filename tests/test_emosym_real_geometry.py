"""EmoSym at Qwen2-VL-2B-Instruct's real geometry, random weights, nothing downloaded: the config's published
parameter count (meta device, fast), and in a slow test the model built in bf16 with EmoSym's LoRA (r 64,
alpha 128) and the two tokens, one step-1 forward and backward on a 56-px image."""

import time

import pytest
import torch

from uniemo.emosym.mllm import TRAINED, EmoSymModel, LoraSettings, apply_lora
from uniemo.real_geometry import QWEN2VL_TOKEN_IDS, QWEN2VL_TOKENIZER_SIZE, build_qwen2vl_2b

# LoRA r 64 on the 7 linear layers of each of the 28 decoder layers: r · (in + out) each
# q, o: 1536 -> 1536; k, v: 1536 -> 256; gate, up: 1536 -> 8960; down: 8960 -> 1536
LORA_2B = 28 * 64 * (2 * (1536 + 1536) + 2 * (1536 + 256) + 3 * (1536 + 8960))


def test_qwen2vl_2b_geometry_on_meta():
    model = build_qwen2vl_2b(device="meta")
    assert sum(p.numel() for p in model.parameters()) == 2_208_985_600  # Qwen2-VL-2B's published 2.21 B
    text = model.config.get_text_config()
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.vocab_size) == (1536, 28, 12, 2, 151936)
    assert model.config.image_token_id == QWEN2VL_TOKEN_IDS["<|image_pad|>"]
    assert model.get_input_embeddings().num_embeddings > QWEN2VL_TOKENIZER_SIZE + 2  # room for [EMO], [CTX]


@pytest.mark.slow
def test_qwen2vl_2b_step1_forward_and_backward_in_bf16():
    from transformers import Qwen2VLImageProcessor

    t0 = time.perf_counter()
    mllm = build_qwen2vl_2b(seed=0)
    built = time.perf_counter() - t0
    assert next(mllm.parameters()).dtype == torch.bfloat16
    # the real tokenizer would give the two added tokens the next ids; the embedding already has their rows
    emo, ctx = QWEN2VL_TOKENIZER_SIZE, QWEN2VL_TOKENIZER_SIZE + 1
    model = EmoSymModel(apply_lora(mllm, (emo, ctx), LoraSettings(64, 128, 0.05)), None, (emo, ctx), text_dim=768)
    parts = model.parts()
    assert sum(p.numel() for p in parts["lora"]) == LORA_2B == 73_859_072
    assert sum(p.numel() for p in parts["tokens"]) == 2 * 1536
    trained = model.set_trainable("compress")
    assert {id(p) for p in trained} == {id(p) for part in TRAINED["compress"] for p in parts[part]}

    # one 56-px image: 4 x 4 patches of 14 px, merged 2 x 2 into 4 image tokens
    processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56)
    image = torch.rand(3, 56, 56)
    pixels = processor(images=[image], return_tensors="pt", do_rescale=False)
    assert pixels["image_grid_thw"].tolist() == [[1, 4, 4]]
    ids = QWEN2VL_TOKEN_IDS
    row = [ids["<|im_start|>"], 872, 198, ids["<|vision_start|>"], *[ids["<|image_pad|>"]] * 4,
           ids["<|vision_end|>"], 3838, 374, ids["<|im_end|>"], 198, ids["<|im_start|>"], 77091, 198, ctx, emo]
    input_ids = torch.tensor([row])
    out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                pixel_values=pixels["pixel_values"].to(torch.bfloat16), image_grid_thw=pixels["image_grid_thw"],
                mm_token_type_ids=(input_ids == ids["<|image_pad|>"]).long())  # 1 marks image tokens
    assert out.logits.shape == (1, 8) and out.emo_hidden.shape == out.ctx_hidden.shape == (1, 1536)
    assert out.emo_hidden.dtype == torch.bfloat16 and out.logits.dtype == torch.float32
    # step 1's two terms: CE on [EMO], and a pull of [CTX] towards a (random) rationale embedding
    target = model.project_rationales(torch.randn(1, 768)).float()
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([3])) \
        - torch.nn.functional.cosine_similarity(out.ctx_hidden.float(), target).mean()
    loss.backward()
    assert all(p.grad is None for p in parts["base"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in parts["cls_head"] + parts["con_head"] + parts["tokens"])
    print(f"\nQwen2-VL-2B (random, bf16) built in {built:.0f} s; step-1 forward and backward in "
          f"{time.perf_counter() - t0 - built:.0f} s")
