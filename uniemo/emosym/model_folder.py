"""An EmoSym model folder, written and read here only.

    emosym.json            what the folder is: the base MLLM (Hub id, or a folder inside this one), the text
                           encoder of the rationales, the emotions, the two token ids, LoRA's settings, the run's
                           figures
    adapter/               peft's save of the LoRA weights and the two trainable token rows
    processor/             the processor, its tokenizer holding [EMO] and [CTX]
    heads.safetensors      cls_head.* and con_head.*
    rationales.json        the knowledge base's distinct sentences, and rationales.safetensors their text embeddings

after step 3 (generation) also:

    mappers/               ``EmoSymMappers`` (config.json + model.safetensors)
    emotion_space.safetensors   the per-emotion Gaussians over (h_EMO, h_CTX) (``uniemo.emotion_space``, kinds emo, ctx)
    emosym.json            gains ``diffusion`` (Hub id, or a folder inside this one), ``resolution`` and
                           ``placeholder_token``

and always ``README.md``, its Hugging Face model card (``emosym_card``: ``info["title"]`` and
``info["description"]`` when given, else derived from the descriptor).

The base MLLM's and Stable Diffusion's weights are not copied (they are the Hub's, or the tiny world's folders
beside the adapter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor

from uniemo.emosym.mappers import EmoSymMappers
from uniemo.emosym.mllm import EmoSymModel, load_mllm
from uniemo.emosym.rationales import RationaleBase
from uniemo.emotion_space import EmotionSpace
from uniemo.model_folder import LIBRARY_NAME, LICENSE, hub_bases

DESCRIPTOR = "emosym.json"
EMOSYM_FORMAT_VERSION = 1
CARD = "README.md"
# written by save_emosym from the model itself (a loaded descriptor's copies are dropped); "path" is where a
# pipeline loaded the folder from
DERIVED_KEYS = ("format_version", "token_ids", "text_dim", "num_classes", "path")
EMOSYM_CITATION = """@inproceedings{zhu2025emosym,
  title     = {EmoSym: A Symbiotic Framework for Unified Emotional Understanding and Generation via Latent Reasoning},
  author    = {Zhu, Yijie and Lyu, Yibo and Yu, Zitong and Shao, Rui and Zhou, Kaiyang and Nie, Liqiang},
  booktitle = {Proceedings of the 33rd ACM International Conference on Multimedia},
  year      = {2025}
}"""


def save_emosym(folder: str | Path, model: EmoSymModel, base: RationaleBase, info: Mapping[str, Any],
                mappers: EmoSymMappers | None = None, space: EmotionSpace | None = None) -> Path:
    """Write ``model`` (peft-wrapped), its rationale base and ``info`` (``mllm``, ``text_encoder``, ``emotions``,
    any figures) to ``folder``; after step 3 also its ``mappers`` and emotion ``space`` (``info`` then names the
    ``diffusion`` base and the ``resolution``)."""
    for key in ("mllm", "text_encoder", "emotions"):
        if key not in info:
            raise ValueError(f"info needs {key!r}")
    if (mappers is None) != (space is None):
        raise ValueError("step 3's folder needs both the mappers and the emotion space")
    if mappers is not None and not {"diffusion", "resolution"} <= set(info):
        raise ValueError("a folder with mappers needs info['diffusion'] and info['resolution']")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.mllm.save_pretrained(folder / "adapter")
    model.processor.save_pretrained(folder / "processor")
    heads = {f"cls_head.{k}": v for k, v in model.cls_head.state_dict().items()}
    heads.update({f"con_head.{k}": v for k, v in model.con_head.state_dict().items()})
    save_file({k: v.detach().contiguous().cpu() for k, v in heads.items()}, folder / "heads.safetensors")
    (folder / "rationales.json").write_text(json.dumps(base.sentences, indent=0) + "\n")
    save_file({"embeds": base.embeds.contiguous().cpu()}, folder / "rationales.safetensors")
    if mappers is not None:
        mappers.save_pretrained(folder / "mappers")
        space.save(folder)
    # the keys the folder's own contents decide are derived here, whatever ``info`` (a loaded descriptor) says
    descriptor = {"format_version": EMOSYM_FORMAT_VERSION,
                  **{k: v for k, v in info.items() if k not in DERIVED_KEYS},
                  "token_ids": [model.emo_id, model.ctx_id], "text_dim": model.con_head[0].in_features,
                  "num_classes": model.cls_head[-1].out_features}
    (folder / DESCRIPTOR).write_text(json.dumps(descriptor, indent=2) + "\n")
    emosym_card(descriptor).save(folder / CARD)
    return folder


def emosym_card(info: Mapping[str, Any]) -> ModelCard:
    """The folder's model card: front matter, what the model is (``info["description"]``, else derived), how to
    load it and the citation."""
    generates = "diffusion" in info  # step 3's folder
    hub = hub_bases({"base_models": {"mllm": info.get("mllm")}, "diffusion": info.get("diffusion")})
    data = ModelCardData(library_name=LIBRARY_NAME, license=LICENSE,
                         pipeline_tag="text-to-image" if generates else "image-classification",
                         tags=["emotion", "emosym", "qwen2-vl", "lora"], base_model=hub or None)
    emotions = ", ".join(info.get("emotions", []))
    what = info.get("description") or (
        f"An EmoSym model ({info.get('step', 'compress')} step): a multimodal LLM ({info.get('mllm')}) with LoRA and "
        f"two added tokens, [EMO] for the emotion ({emotions}) and [CTX] for the reason, matched to a knowledge "
        "base of rationales" + (f"; two mappers drive Stable Diffusion ({info.get('diffusion')}) through a "
                                "placeholder token" if generates else "") + ".")
    usage = ("```python\nfrom uniemo.emosym.pipeline import EmoSymPipeline\n\n"
             'pipe = EmoSymPipeline.from_pretrained("path/to/this/folder")\n'
             'prediction = pipe.classify("photo.jpg")  # .label, .probs, .rationales\n'
             + ('images = pipe.generate("awe", num_images=2)\n' if generates else "") + "```")
    body = [f"<!-- written by uniemo.emosym.model_folder.save_emosym from {DESCRIPTOR} -->",
            f"# {info.get('title', 'EmoSym model')}", what, f"## Usage\n\n{usage}",
            f"## Citation\n\n```bibtex\n{EMOSYM_CITATION}\n```"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n")


def read_descriptor(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / DESCRIPTOR
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an EmoSym model folder: {DESCRIPTOR} is missing")
    info = json.loads(path.read_text())
    if info.get("format_version") != EMOSYM_FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {info.get('format_version')!r}, this code reads "
                         f"{EMOSYM_FORMAT_VERSION}")
    return info


def base_source(folder: str | Path, info: Mapping[str, Any], key: str = "mllm") -> str:
    """The base MLLM's (``key="diffusion"``: Stable Diffusion's) folder or Hub id: a relative folder is looked up
    inside ``folder`` first."""
    inside = Path(folder) / info[key]
    return str(inside) if inside.is_dir() else info[key]


def load_generation_parts(folder: str | Path) -> tuple[EmoSymMappers, EmotionSpace]:
    """Step 3's mappers and emotion space, or a ``FileNotFoundError`` that says the folder has none."""
    folder = Path(folder)
    if not (folder / "mappers").is_dir():
        raise FileNotFoundError(f"{folder} has no mappers/: it is a step-1 or step-2 folder (understanding only); "
                                "run train/emosym_generate.py on it to generate")
    return EmoSymMappers.from_pretrained(folder / "mappers").eval(), EmotionSpace.load(folder)


def load_emosym(folder: str | Path, dtype: str = "fp32", trainable: bool = False,
                mllm: str | None = None) -> tuple[EmoSymModel, RationaleBase, dict[str, Any]]:
    """The model, its rationale base and descriptor. ``trainable`` keeps LoRA and the token rows trainable
    (continuing training); ``mllm`` overrides the recorded base (another copy of the same weights)."""
    folder = Path(folder)
    info = read_descriptor(folder)
    base, _ = load_mllm(mllm or base_source(folder, info), dtype)
    processor = AutoProcessor.from_pretrained(folder / "processor")
    if base.get_input_embeddings().num_embeddings < len(processor.tokenizer):
        base.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
    wrapped = PeftModel.from_pretrained(base, folder / "adapter", is_trainable=trainable)
    model = EmoSymModel(wrapped, processor, tuple(info["token_ids"]), info["text_dim"], info["num_classes"])
    heads = load_file(folder / "heads.safetensors")
    model.cls_head.load_state_dict({k[len("cls_head."):]: v for k, v in heads.items() if k.startswith("cls_head.")})
    model.con_head.load_state_dict({k[len("con_head."):]: v for k, v in heads.items() if k.startswith("con_head.")})
    sentences = json.loads((folder / "rationales.json").read_text())
    base_kb = RationaleBase(sentences, load_file(folder / "rationales.safetensors")["embeds"])
    model.eval()
    return model, base_kb, info


@torch.no_grad()
def explain(model: EmoSymModel, base: RationaleBase, images, k: int = 1):
    """Probabilities and the ``k`` rationales nearest to each image's [CTX] (in h_CTX's space: the base's
    embeddings through ``con_head``)."""
    device = next(model.cls_head.parameters()).device
    batch = {key: v.to(device) for key, v in model.encode(images).items()}
    out = model(**batch)
    in_ctx_space = RationaleBase(base.sentences, model.project_rationales(base.embeds.to(device)))
    return out.logits.float().softmax(-1).cpu(), in_ctx_space.nearest(out.ctx_hidden, k)
