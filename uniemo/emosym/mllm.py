"""EmoSym's reasoning model: Qwen2-VL (transformers' own classes) with the added ``[EMO]`` and ``[CTX]`` tokens,
LoRA through peft, the 8-way emotion head and the rationale projection.

The image and a fixed question form the user turn; the assistant turn is the literal ``[CTX][EMO]``. Nothing is
decoded: the last layer's hidden states at those two positions are the outputs.

    h_EMO -> ``cls_head`` (hidden -> 256 -> 8)           emotion logits (cross-entropy, and step 2's reward)
    h_CTX                                               the compressed rationale ("latent reasoning")
    t     -> ``con_head`` (text_dim -> hidden -> hidden)   a rationale's frozen text embedding brought to h_CTX's
                                                        space, where InfoNCE pulls h_CTX towards it (training only)

The two tokens are trained as rows of the input embedding (peft's ``trainable_token_indices``), so the base
embedding matrix stays as loaded, like every base weight under LoRA. Which parts each step trains is
``set_trainable``'s job (see ``TRAINED``). The prompt follows Qwen2-VL-Instruct's chat format, its default system
turn included, written out here so that a tokenizer without a chat template (the tiny world's) sees the same text.
Nothing here is adapted from another repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from PIL import Image
from torch import Tensor, nn
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

EMO_TOKEN, CTX_TOKEN = "[EMO]", "[CTX]"
QUESTION = "What is the emotion of the image?\nSummarize above image and sentence in one word: "
SYSTEM = "You are a helpful assistant."
HEAD_WIDTH = 256  # cls_head's hidden layer
# the language model's linear layers that get LoRA (the vision tower, its merger and lm_head get none)
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

# what each step trains (docs/method.md section 11); everything else is frozen
TRAINED = {
    "compress": ("lora", "tokens", "cls_head", "con_head"),  # step 1: 0.5 CE + 0.5 InfoNCE
    "reward": ("lora", "tokens", "cls_head"),  # step 2: CE - (R - beta KL); no rationale, so no con_head
    "generate": ("tokens", "cls_head"),  # step 3: the MLLM frozen but for the two tokens and the head
}


def prompt_text() -> str:
    """One row's text: the user turn (the image, then ``QUESTION``) and the assistant turn ``[CTX][EMO]``."""
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{QUESTION}<|im_end|>\n"
            f"<|im_start|>assistant\n{CTX_TOKEN}{EMO_TOKEN}")


def add_reasoning_tokens(processor, model: nn.Module) -> tuple[int, int]:
    """Add ``[EMO]`` and ``[CTX]`` to the tokenizer as special tokens, once, and give the model's embedding a row
    for each (a second call finds them and adds nothing). Returns their ids (emo, ctx)."""
    tokenizer = processor.tokenizer
    missing = [t for t in (EMO_TOKEN, CTX_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    ids = tuple(tokenizer.convert_tokens_to_ids([EMO_TOKEN, CTX_TOKEN]))
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return ids


def limit_image_pixels(processor, max_pixels: int) -> None:
    """Cap the pixels of an image after the processor's resizing (Qwen2-VL keeps the aspect ratio and rounds to
    its 28-px grid): 448 x 448 gives about 256 image tokens, where the processor's default (1 003 520 px) gives up
    to 1280. The processor keeps the setting when saved."""
    size = dict(processor.image_processor.size)
    if max_pixels < size["shortest_edge"]:
        raise ValueError(f"max_pixels {max_pixels} is below the processor's minimum {size['shortest_edge']}")
    processor.image_processor.size = {"shortest_edge": size["shortest_edge"], "longest_edge": int(max_pixels)}


def token_positions(input_ids: Tensor, token_id: int) -> Tensor:
    """(B,) the position of ``token_id`` in each row; each row must hold it exactly once."""
    hits = input_ids == token_id
    counts = hits.sum(dim=1)
    if not torch.all(counts == 1):
        raise ValueError(f"each row must hold token {token_id} exactly once; counts {counts.tolist()}")
    return hits.int().argmax(dim=1)


@dataclass
class LoraSettings:
    """LoRA on the language model (EmoSym: r 64, alpha 128, dropout 0.05)."""
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05


def apply_lora(model: nn.Module, token_ids: Sequence[int], settings: LoraSettings | None = None) -> nn.Module:
    """Wrap ``model`` with peft: LoRA on ``LORA_TARGETS`` and the embedding rows of ``token_ids`` trainable.
    Every base weight, the embedding matrix included, stays as it was (peft keeps the new rows apart)."""
    s = settings or LoraSettings()
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=LORA_TARGETS,
                        trainable_token_indices={"embed_tokens": list(token_ids)}, bias="none")
    return get_peft_model(model, config)


@dataclass
class EmoSymOutput:
    logits: Tensor  # (B, 8) from h_EMO
    emo_hidden: Tensor  # (B, H) last layer at [EMO]
    ctx_hidden: Tensor  # (B, H) last layer at [CTX]


class EmoSymModel(nn.Module):
    """The MLLM (peft-wrapped or plain ``Qwen2VLForConditionalGeneration``), its processor and the two heads."""

    def __init__(self, mllm: nn.Module, processor, token_ids: tuple[int, int], text_dim: int,
                 num_classes: int = 8):
        super().__init__()
        self.mllm = mllm
        self.processor = processor
        self.emo_id, self.ctx_id = token_ids
        hidden = self.hidden_size
        self.cls_head = nn.Sequential(nn.Linear(hidden, HEAD_WIDTH), nn.ReLU(), nn.Linear(HEAD_WIDTH, num_classes))
        self.con_head = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    @property
    def hidden_size(self) -> int:
        return self.mllm.config.get_text_config().hidden_size

    def encode(self, images: Sequence[Image.Image]) -> dict[str, Tensor]:
        """The processor's batch for ``images`` (RGB), each with the fixed prompt."""
        rgb = [im.convert("RGB") for im in images]
        return self.processor(images=rgb, text=[prompt_text()] * len(rgb), return_tensors="pt", padding=True)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, pixel_values: Tensor, image_grid_thw: Tensor,
                **extra) -> EmoSymOutput:
        out = self.mllm(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                        image_grid_thw=image_grid_thw, output_hidden_states=True, return_dict=True,
                        logits_to_keep=1, **extra)
        last = out.hidden_states[-1]
        rows = torch.arange(last.shape[0], device=last.device)
        emo = last[rows, token_positions(input_ids, self.emo_id).to(last.device)]
        ctx = last[rows, token_positions(input_ids, self.ctx_id).to(last.device)]
        return EmoSymOutput(logits=self.cls_head(emo.to(self.cls_head[0].weight.dtype)), emo_hidden=emo,
                            ctx_hidden=ctx)

    def project_rationales(self, text_embeds: Tensor) -> Tensor:
        """(B, text_dim) frozen rationale embeddings -> (B, H), the space of h_CTX."""
        return self.con_head(text_embeds.to(self.con_head[0].weight.dtype))

    def parts(self) -> dict[str, list[nn.Parameter]]:
        """The parameters by part: ``lora``, ``tokens`` (the two trainable embedding rows), ``cls_head``,
        ``con_head`` and ``base`` (everything loaded: the LLM, the vision tower, the embedding matrix)."""
        out = {"lora": [], "tokens": [], "cls_head": list(self.cls_head.parameters()),
               "con_head": list(self.con_head.parameters()), "base": []}
        for name, p in self.mllm.named_parameters():
            if "lora_" in name:
                out["lora"].append(p)
            elif "trainable_tokens_delta" in name:
                out["tokens"].append(p)
            else:
                out["base"].append(p)
        return out

    def set_trainable(self, step: str) -> list[nn.Parameter]:
        """Freeze everything but ``TRAINED[step]``; returns the trained parameters (for the optimizer)."""
        if step not in TRAINED:
            raise ValueError(f"unknown step {step!r}; expected one of {sorted(TRAINED)}")
        parts = self.parts()
        if not parts["tokens"] and "tokens" in TRAINED[step]:
            raise ValueError("the MLLM has no trainable token rows: wrap it with apply_lora first")
        trained = []
        for part, params in parts.items():
            on = part in TRAINED[step]
            for p in params:
                p.requires_grad_(on)
            if on:
                trained += params
        return trained


def load_mllm(source: str, dtype: str = "bf16"):
    """A Qwen2-VL and its processor from a Hub id or a local folder (transformers' own loaders); bf16 or fp32."""
    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    model = Qwen2VLForConditionalGeneration.from_pretrained(source, dtype=torch_dtype)
    return model, AutoProcessor.from_pretrained(source)
