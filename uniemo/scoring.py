"""CLIP-based scores of images: the emotion probe's probabilities and zero-shot semantic clarity.

Algorithm 1 (paper III-C, docs/method.md section 7) scores each generated image from its CLIP features twice:
P_emo, the emotion probe's probability of the intended emotion, and S_sem, the semantic clarity, here the
highest zero-shot CLIP probability over the attribute base (scene names and object names, each a softmax of
its own, the larger maximum wins, as Sem-C takes the larger of a scene and an object classifier's top-1).
The same scores give the generation metrics their CLIP parts (docs/method.md section 8): Emo-A (the one-layer
probe, or EmoGen's released Linear(768, 8) head), the CLIP variant of Sem-C, and Sem-D's embeddings. Used by
``train/feedback.py``, the memory bank in ``train/joint.py`` and ``eval/score.py``.

Paper symbol -> code name:
    M_CLIP(I) = F              -> ``ImageScorer.embed``
    M_emo(F) = P_emo           -> ``ImageScorer.emotion_probabilities`` (row of the intended emotion)
    M_sem(F) = S_sem           -> ``ImageScorer.attribute_probabilities`` + ``semantic_clarity_scores``

Weights: a probe run folder written by ``train/probe.py`` records the CLIP it was trained on in its
``config.yaml`` (``model.clip``, or ``null`` + ``model.preset`` for the seeded random tiny CLIP), and
``clip_for_probe_run`` rebuilds exactly that CLIP. EmoGen's head is a pickle-format ``.pth``; it is read
with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers. Nothing
here is adapted from another repository.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import Tensor, nn
from torchvision import transforms as T
from tqdm.auto import tqdm

from uniemo.classifier import EmoClassifierConfig
from uniemo.clip import AttributeTextEncoder, build_tiny_clip, load_clip
from uniemo.constants import CLIP_MEAN, CLIP_STD, EMOTIONS
from uniemo.data.images import open_image
from uniemo.probe import EmotionProbe, EmotionProbeConfig, clip_image_embeddings

logger = logging.getLogger(__name__)

PROBE_SUBDIR = "probe"
ImageLike = Image.Image | str | os.PathLike


def semantic_clarity_scores(scene_probs: Tensor | None, object_probs: Tensor | None) -> Tensor:
    """Per image, the larger of the two top-1 probabilities (either side may be absent).

    Args:
        scene_probs: (N, S) probabilities over scenes (softmax rows), or ``None``.
        object_probs: (N, O) probabilities over objects, or ``None``.

    Returns:
        (N,) S_sem.
    """
    tops = [p.max(dim=-1).values for p in (scene_probs, object_probs) if p is not None and p.shape[-1] > 0]
    if not tops:
        raise ValueError("semantic clarity needs scene or object probabilities")
    return torch.stack(tops).max(dim=0).values if len(tops) > 1 else tops[0]


def clip_pixels(images: Sequence[Image.Image], image_size: int, double_rescale: bool = False) -> Tensor:
    """PIL images -> (N, 3, S, S) CLIP input: shortest-side bicubic resize, centre crop, CLIP mean/std.

    Args:
        double_rescale: EmoGen's Sem-D quirk (``emogen_emoset_notes.md`` 3.5): its images were already in
            [0, 1] when CLIP's processor divided by 255 again, so the CLIP input is a near-black image.
    """
    geometry = T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
                          T.CenterCrop(image_size), T.ToTensor()])
    x = torch.stack([geometry(image.convert("RGB")) for image in images])  # (N, 3, S, S) in [0, 1]
    if double_rescale:
        x = x / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def batched(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ImageScorer:
    """A frozen CLIP with an optional emotion probe and an optional attribute base.

    Args:
        clip_model: a transformers ``CLIPModel`` (frozen).
        tokenizer: its tokenizer (for the attribute names).
        probe: an ``EmotionProbe`` on this CLIP's image embeddings, or ``None``.
        scene_names, object_names: the attribute base for S_sem (either may be empty).
        device: where CLIP and the probe run.
        batch_size: images per CLIP forward.
    """

    def __init__(self, clip_model: nn.Module, tokenizer, probe: EmotionProbe | None = None,
                 scene_names: Sequence[str] = (), object_names: Sequence[str] = (),
                 device: str | torch.device = "cpu", batch_size: int = 64):
        self.device = torch.device(device)
        self.clip = clip_model.eval().requires_grad_(False).to(self.device)
        self.tokenizer = tokenizer
        self.probe = probe.eval().to(self.device) if probe is not None else None
        self.batch_size = batch_size
        self.image_size = int(self.clip.config.vision_config.image_size)
        self.scene_names, self.object_names = list(scene_names), list(object_names)
        self._text: dict[str, Tensor] = {}

    @classmethod
    def from_probe_run(cls, probe_dir: str | os.PathLike, scene_names: Sequence[str] = (),
                       object_names: Sequence[str] = (), device: str | torch.device = "cpu",
                       clip: str | None = None, batch_size: int = 64) -> ImageScorer:
        """The probe of a ``train/probe.py`` run (or a bare probe folder with ``clip`` given) and its CLIP."""
        probe = load_probe(probe_dir)
        if clip is not None:
            clip_model, tokenizer = load_clip(clip)
        else:
            clip_model, tokenizer = clip_for_probe_run(probe_dir)
        return cls(clip_model, tokenizer, probe, scene_names, object_names, device, batch_size)

    @property
    def emotions(self) -> tuple[str, ...]:
        if self.probe is None:
            raise ValueError("this scorer has no emotion probe")
        return tuple(self.probe.emotions)

    @torch.no_grad()
    def embed(self, images: Sequence[ImageLike], normalize: bool = True, double_rescale: bool = False,
              progress: str | None = None) -> Tensor:
        """(N,) images or paths -> (N, E) projected CLIP image embeddings (float32, on the CPU).

        Args:
            normalize: L2-normalise (what ``EmotionProbe`` and zero-shot scores use); ``False`` keeps the raw
                projected features (EmoGen's Emo-A head and Sem-D's MSE are defined on those).
            double_rescale: see ``clip_pixels``.
            progress: a tqdm description, or ``None`` for no bar.
        """
        chunks = []
        batches = batched(list(images), self.batch_size)
        total = -(-len(images) // self.batch_size)
        for batch in tqdm(batches, total=total, desc=progress, disable=progress is None, unit="batch"):
            pixels = clip_pixels([open_image(x) for x in batch], self.image_size, double_rescale).to(self.device)
            chunks.append(clip_image_embeddings(self.clip, pixels, normalize=normalize).cpu())
        dim = self.clip.config.projection_dim
        return torch.cat(chunks) if chunks else torch.zeros(0, dim)

    @torch.no_grad()
    def emotion_logits(self, embeds: Tensor) -> Tensor:
        """(N, E) embeddings -> (N, C) probe logits (the probe normalises its input unless told not to)."""
        if self.probe is None:
            raise ValueError("this scorer has no emotion probe: pass a probe run folder")
        return self.probe(embeds.to(self.device)).float().cpu()

    def emotion_probabilities(self, embeds: Tensor) -> Tensor:
        """(N, E) -> (N, C) p(e | I)."""
        return self.emotion_logits(embeds).softmax(dim=-1)

    @torch.no_grad()
    def text_embeddings(self, names: Sequence[str]) -> Tensor:
        """(A,) names -> (A, E) L2-normalised CLIP text embeddings (cached), raw names as in the attribute base."""
        todo = [n for n in dict.fromkeys(names) if n not in self._text]
        if todo:
            self._text.update(zip(todo, AttributeTextEncoder(self.clip, self.tokenizer).embed(todo)))
        if not names:
            return torch.zeros(0, self.clip.config.projection_dim)
        return torch.stack([self._text[n] for n in names])

    @torch.no_grad()
    def attribute_probabilities(self, embeds: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Zero-shot CLIP probabilities of each image over the scene base and over the object base.

        Args:
            embeds: (N, E) L2-normalised image embeddings.

        Returns:
            (scene_probs (N, S) or None, object_probs (N, O) or None): softmax over CLIP's scaled cosines.
        """
        if not self.scene_names and not self.object_names:
            raise ValueError("no attribute base: give scene or object names (a model folder's attributes.json)")
        # CLIP's own learned temperature turns cosines into zero-shot logits.
        scale = self.clip.logit_scale.exp().float().cpu()
        images = F.normalize(embeds.float(), dim=-1)
        out: list[Tensor | None] = []
        for names in (self.scene_names, self.object_names):
            if not names:
                out.append(None)
                continue
            out.append((scale * images @ self.text_embeddings(names).T).softmax(dim=-1))
        return out[0], out[1]

    def semantic_clarity(self, embeds: Tensor) -> Tensor:
        """(N, E) -> (N,) S_sem, the highest zero-shot probability over the attribute base."""
        return semantic_clarity_scores(*self.attribute_probabilities(embeds))

    def feedback_scores(self, images: Sequence[ImageLike], intended: Sequence[int],
                        progress: str | None = None) -> dict[str, Tensor]:
        """Algorithm 1's two scores of each image.

        Args:
            images: N images or paths.
            intended: N intended emotion indices (into the probe's emotions).

        Returns:
            ``{"emotion_score": (N,) P_emo, "semantic_score": (N,) S_sem, "predicted": (N,) probe argmax}``.
        """
        embeds = self.embed(images, progress=progress)
        probs = self.emotion_probabilities(embeds)
        target = torch.as_tensor(list(intended), dtype=torch.long)
        return {"emotion_score": probs.gather(1, target[:, None]).squeeze(1) if len(target) else torch.zeros(0),
                "semantic_score": self.semantic_clarity(embeds) if len(target) else torch.zeros(0),
                "predicted": probs.argmax(dim=-1)}


def load_probe(path: str | os.PathLike) -> EmotionProbe:
    """An ``EmotionProbe`` from a probe run folder (``<run>/probe/``) or a probe folder itself."""
    path = Path(path)
    folder = path / PROBE_SUBDIR if (path / PROBE_SUBDIR / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no emotion probe in {str(path)!r}: expected a train/probe.py run folder "
                                f"(with {PROBE_SUBDIR}/) or a probe folder (config.json + model.safetensors)")
    return EmotionProbe.from_pretrained(folder).eval()


def clip_for_probe_run(probe_dir: str | os.PathLike):
    """The frozen CLIP a ``train/probe.py`` run was trained on, read from its ``config.yaml``.

    Returns:
        (clip_model, tokenizer)
    """
    config_path = Path(probe_dir) / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.yaml in {str(probe_dir)!r}: name the probe's CLIP explicitly (--clip)")
    model = (yaml.safe_load(config_path.read_text()) or {}).get("model", {})
    if model.get("clip"):
        return load_clip(model["clip"])
    # clip: null -> the seeded random CLIP of the preset's geometry, as train/probe.py builds it
    arch = EmoClassifierConfig.from_preset(model.get("preset", "vit-b-32"))
    clip_model, tokenizer = build_tiny_clip(image_size=arch.image_size, patch_size=arch.patch_size, width=arch.width,
                                            layers=arch.layers, heads=arch.heads, proj_dim=arch.proj_dim)
    return clip_model.eval().requires_grad_(False), tokenizer


def load_emogen_head(path: str | os.PathLike, emotions: Sequence[str] = EMOTIONS) -> EmotionProbe:
    """EmoGen's released Emo-A classifier (a Linear(768, 8) on raw CLIP ViT-L/14 features) as a probe.

    The file is a pickle-format ``.pt`` / ``.pth`` (saved on a GPU); it is read with ``weights_only=True`` and
    ``map_location="cpu"``. Accepted layouts: ``{"fc.weight", "fc.bias"}`` (the release), a bare
    ``{"weight", "bias"}``, either with a ``module.`` prefix, or wrapped in ``{"state_dict": ...}``.

    Returns:
        A one-layer ``EmotionProbe`` with ``normalize_input=False`` (the head was trained on unnormalised
        projected features; feed it ``ImageScorer.embed(..., normalize=False)``).
    """
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    if "weight" in state and "fc.weight" not in state:
        state = {f"fc.{k}": v for k, v in state.items()}
    if set(state) != {"fc.weight", "fc.bias"}:
        raise ValueError(f"{path} holds keys {sorted(state)}; expected fc.weight and fc.bias (one Linear layer)")
    num_classes, embed_dim = state["fc.weight"].shape
    if num_classes != len(emotions):
        raise ValueError(f"{path} has {num_classes} classes but {len(emotions)} emotions were given")
    probe = EmotionProbe(EmotionProbeConfig(embed_dim=embed_dim, num_classes=num_classes, layers=1,
                                            emotions=tuple(emotions), normalize_input=False))
    probe.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return probe.eval()
