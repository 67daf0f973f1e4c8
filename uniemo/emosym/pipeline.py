"""``EmoSymPipeline``: an EmoSym model folder (after step 3) with ``UniEmoPipeline``'s API.

``classify`` answers with the probabilities and, in place of UniEmo's attention maps and attributes, the
rationales of the knowledge base nearest to the image's ``[CTX]`` state: sentences that say why. ``generate``,
``transfer``, ``neutral`` and ``fuse`` are UniEmo's own (inherited): only the condition differs, sampled from the
emotion space over (h_EMO, h_CTX) and mapped by the two mappers (or taken from a reference image). Transfer draws
its part of a mixture by weight (UniEmo picks the part nearest the noun through its object queries, which EmoSym
does not have).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.data.images import open_image
from uniemo.diffusion import add_placeholder_token, load_stable_diffusion
from uniemo.emosym.model_folder import base_source, explain, load_emosym, load_generation_parts, save_emosym
from uniemo.pipeline import EmotionPrediction, UniEmoPipeline, _center_crop, resolve_dtype
from uniemo.sampling import OFFICIAL_SETTINGS


@dataclass
class EmoSymPrediction(EmotionPrediction):
    """``classify``'s answer: ``label``, ``probs`` and ``view`` as UniEmo's; no attention maps (``None``);
    ``rationales``: the nearest sentences of the knowledge base with their cosine similarities."""
    rationales: list[tuple[str, float]] = field(default_factory=list)


class EmoSymPipeline(UniEmoPipeline):
    """Classify (with a rationale), generate, transfer and fuse with a trained EmoSym model."""

    def __init__(self, model, rationale_base, mappers, emotion_space, sd_pipe, placeholder_id: int,
                 resolution: int = 512, info: dict | None = None):
        self.model = model.eval()
        self.rationale_base = rationale_base
        self.mappers = mappers.eval()
        self.emotion_space = emotion_space
        self.sd = sd_pipe
        self.sd.set_progress_bar_config(disable=True)
        self.placeholder_id = placeholder_id
        self.resolution = resolution
        self.info = dict(info or {})
        self.defaults = {**OFFICIAL_SETTINGS, **self.info.get("sampler", {})}
        self.set_scheduler(self.defaults["scheduler"])
        if tuple(emotion_space.emotions) != tuple(self.info["emotions"]):
            raise ValueError(f"emotion space labels {emotion_space.emotions} differ from the model's")
        self._negative = None
        self.device = next(self.mappers.parameters()).device

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "cpu", dtype: torch.dtype | str | None = None,
                        safety_checker: bool = False) -> EmoSymPipeline:
        """Load a local EmoSym model folder written by step 3 (``train/emosym_generate.py``)."""
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"EmoSym model folder {str(path)!r} does not exist")
        dtype = resolve_dtype(dtype)
        model, base, info = load_emosym(root, "bf16" if dtype == torch.bfloat16 else "fp32")
        mappers, space = load_generation_parts(root)
        sd = load_stable_diffusion(base_source(root, info, "diffusion"), torch_dtype=dtype,
                                   safety_checker=safety_checker)
        placeholder_id = add_placeholder_token(sd.tokenizer, sd.text_encoder,
                                               info.get("placeholder_token", PLACEHOLDER_TOKEN))
        pipe = cls(model, base, mappers, space, sd, placeholder_id, resolution=int(info["resolution"]),
                   info={**info, "path": str(root)})
        return pipe.to(device, dtype)

    def save_pretrained(self, directory: str | os.PathLike, repo_id: str | None = None) -> None:
        """Write an EmoSym model folder that ``from_pretrained`` loads back, through the recipes' own writer
        (``uniemo.emosym.model_folder.save_emosym``): the adapter and token rows, the heads, the rationale base,
        the mappers and the emotion space. A base (the MLLM, Stable Diffusion) that the loaded folder held as a
        local folder is written inside (``mllm/``, ``diffusion/``); a Hub id is kept as it is. ``repo_id`` is
        accepted for ``push_to_hub`` (inherited: it uploads this folder) and recorded."""
        out = Path(directory)
        source = Path(self.info.get("path", "."))
        info = dict(self.info)  # save_emosym drops the keys it derives (the load path among them)
        out.mkdir(parents=True, exist_ok=True)
        mllm = Path(base_source(source, self.info, "mllm"))
        if mllm.is_dir():
            if mllm.resolve() != (out / "mllm").resolve():
                shutil.copytree(mllm, out / "mllm", dirs_exist_ok=True)
            info["mllm"] = "mllm"
        if Path(base_source(source, self.info, "diffusion")).is_dir():
            self.sd.save_pretrained(out / "diffusion", safe_serialization=True)
            info["diffusion"] = "diffusion"
        if repo_id is not None:
            info["repo_id"] = repo_id
        save_emosym(out, self.model, self.rationale_base, info, self.mappers, self.emotion_space)

    def _own_modules(self) -> tuple[torch.nn.Module, ...]:
        return self.model, self.mappers

    @property
    def dtype(self) -> torch.dtype:
        return next(self.mappers.parameters()).dtype

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.info["emotions"])

    @torch.no_grad()
    def classify(self, image, top_rationales: int = 3, top_attributes: int | None = None) -> EmoSymPrediction:
        """Probabilities and the ``top_rationales`` sentences nearest to the image's ``[CTX]``.
        ``top_attributes`` is accepted for ``UniEmoPipeline``'s signature and means the same."""
        image = open_image(image)
        k = top_attributes if top_attributes is not None else top_rationales
        probs, reasons = explain(self.model, self.rationale_base, [image], k=k)
        probs = probs[0]
        return EmoSymPrediction(label=self.emotions[int(probs.argmax())],
                                probs={e: float(p) for e, p in zip(self.emotions, probs)},
                                scene_attention=None, object_attention=None, view=_center_crop(image),
                                rationales=reasons[0])

    def component_for_noun(self, emotion: str, noun: str) -> int | None:
        return None  # by weight (see the module)

    @torch.no_grad()
    def condition(self, emotion: str, num_images: int = 1, seed: int = 0, image=None,
                  component: int | None = None) -> torch.Tensor:
        """c (num_images, C): (h_EMO, h_CTX) drawn from the emotion space (seed ``seed + i`` for row i), or the
        reference ``image``'s own, through the mappers."""
        e = self._emotion_index(emotion)
        if image is not None:
            batch = {k: v.to(self.device) for k, v in self.model.encode([open_image(image)]).items()}
            out = self.model(**batch)
            emo, ctx = (t.float().expand(num_images, -1) for t in (out.emo_hidden, out.ctx_hidden))
        else:
            scale = float(self.defaults.get("space_scale", 1.0))
            rows = [self.emotion_space.sample(e, 1, torch.Generator().manual_seed(seed + i), scale=scale,
                                              component=component) for i in range(num_images)]
            emo, ctx = (torch.cat([r[k] for r in rows]) for k in ("emo", "ctx"))
        return self.mappers(emo.to(self.device), ctx.to(self.device))
