"""``UniEmoPipeline``: the one inference entry point for scripts, evaluation and the demo (docs/method.md section 6).

It holds the trained classifier, the fusion module, the emotion space, the attribute base, the α table and a
stock diffusers ``StableDiffusionPipeline`` (composition, not subclassing). Generation builds the condition c,
turns it into ``prompt_embeds`` through the placeholder token, and calls the stock pipeline with those
embeddings (negative = the empty prompt) — no sampler of our own.

Transfer may weigh the noun on its own (``noun_guidance_scale``, composable guidance; see ``transfer``): the
only place where the denoising loop is ours, and with the noun weighed like the rest it is not used at all. The
settings' limits, the schedulers and both renderings live in ``uniemo.sampling``.

Seeds: image i of a call with ``seed=s`` uses seed ``s + i`` for both its emotion-space sample and its initial
latents, so ``generate(e, num_images=2, seed=0)[1]`` equals ``generate(e, num_images=1, seed=1)[0]``.

Model folder: ``uniemo.json``, ``classifier/``, ``fusion/``, ``emotion_space.safetensors``,
``attributes.json`` + ``attributes.safetensors``, optional ``correlation.safetensors`` + ``.json``, optional
``diffusion/``, and a Hugging Face model card ``README.md``. Only JSON and safetensors are read; ``uniemo.json``
and the card are written and checked by ``uniemo.model_folder``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from uniemo.attributes import AttributeTargets
from uniemo.classifier import EmoClassifier, EmoFeatures
from uniemo.constants import NEUTRAL_NOUNS, PLACEHOLDER_TOKEN
from uniemo.correlation import CorrelationTable
from uniemo.data.images import open_image
from uniemo.data.transforms import build_transform
from uniemo.diffusion import add_placeholder_token, encode_condition, encode_prompt, load_stable_diffusion
from uniemo.emotion_space import EmotionSpace
from uniemo.fusion import EmoFusion, fuse_features
from uniemo.model_folder import REQUIRED_COMPONENTS, kept_card, read_manifest, write_manifest
from uniemo.sampling import (FAST_SETTINGS, MAX_GUIDANCE, MAX_IMAGES, MAX_NOUN_CHARS, MAX_STEPS, OFFICIAL_SETTINGS,
                             SCHEDULERS, Callback, build_scheduler, check_guidance, check_noun, check_settings,
                             render, render_composed)

# the settings' limits and defaults live in uniemo.sampling; they are part of this module's interface too
__all__ = ["EmotionPrediction", "UniEmoPipeline", "load_input_image", "resolve_dtype", "FAST_SETTINGS",
           "MAX_GUIDANCE", "MAX_IMAGES", "MAX_NOUN_CHARS", "MAX_STEPS", "OFFICIAL_SETTINGS", "SCHEDULERS"]

logger = logging.getLogger(__name__)


@dataclass
class EmotionPrediction:
    """The result of ``classify``.

    Attributes:
        label: the most probable emotion.
        probs: every label -> probability (sums to 1), in the model's label order.
        scene_attention, object_attention: (g, g) float arrays in [0, 1] (max = 1) over the patch grid of
            ``view``; the attention of the scene / object queries on the image (paper Fig. 9).
        scene_attributes, object_attributes: nearest attribute names with cosine similarities.
        view: the square centre crop the model saw (at its original resolution), for overlays.
    """

    label: str
    probs: dict[str, float]
    scene_attention: np.ndarray
    object_attention: np.ndarray
    scene_attributes: list[tuple[str, float]] = field(default_factory=list)
    object_attributes: list[tuple[str, float]] = field(default_factory=list)
    view: Image.Image | None = None


def load_input_image(image) -> Image.Image:
    """PIL image, path or (H, W[, C]) uint8 array -> upright (EXIF orientation applied) RGB PIL image, or a clear
    ``ValueError``: ``uniemo.data.images.open_image`` without size limits, what ``classify`` and ``condition`` read
    their image with."""
    return open_image(image)


_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
           "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """``None`` -> float32; a ``torch.dtype`` or one of ``fp32``/``fp16``/``bf16`` (or their long names)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.lower().removeprefix("torch.")]
    raise ValueError(f"dtype must be float32, float16 or bfloat16 (or fp32 / fp16 / bf16), got {dtype!r}")


def _center_crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


class UniEmoPipeline:
    """Classify, generate, transfer and fuse with a trained UniEmo model.

    Build it with ``from_pretrained``; the constructor takes ready components (tests, training scripts).
    """

    def __init__(self, classifier, fusion, emotion_space, attributes, sd_pipe, placeholder_id: int,
                 correlation=None, resolution: int = 512, info: dict | None = None):
        self.classifier = classifier.eval()
        self.fusion = fusion.eval()
        self.emotion_space = emotion_space
        self.attributes = attributes
        self.correlation = correlation
        self.sd = sd_pipe
        self.sd.set_progress_bar_config(disable=True)
        self.placeholder_id = placeholder_id
        self.resolution = resolution
        self.info = dict(info or {})
        # the official sampler settings, unless the model folder recommends its own (uniemo.json "sampler")
        self.defaults = {**OFFICIAL_SETTINGS, **self.info.get("sampler", {})}
        self.set_scheduler(self.defaults["scheduler"])
        cfg = classifier.config
        self.transform = build_transform(cfg.image_size, False, cfg.image_mean, cfg.image_std)
        if tuple(emotion_space.emotions) != tuple(cfg.emotions):
            raise ValueError(f"emotion space labels {emotion_space.emotions} differ from the classifier's")
        self._negative = None
        self.device = next(self.classifier.parameters()).device

    # ---------------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike, device: str = "cpu",
                        dtype: torch.dtype | str | None = None, safety_checker: bool = False,
                        torch_dtype: torch.dtype | str | None = None, revision: str | None = None
                        ) -> UniEmoPipeline:
        """Load a model folder (or a Hugging Face Hub repo id, downloaded unless offline).

        Args:
            path_or_repo: a model folder or a Hub repo id.
            device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
            dtype: the one dtype of every module (classifier, fusion and Stable Diffusion), whatever the folder
                was saved in: a ``torch.dtype`` or ``fp32``/``fp16``/``bf16``. Default float32. (diffusers'
                current name; ``torch_dtype`` is accepted as its older alias.)
            safety_checker: keep Stable Diffusion's safety checker (when the diffusion base has one) and run
                it on every image; flagged images come back black, with ``image.info["nsfw"]`` True. Off by
                default, as in training and evaluation.
            revision: for a Hub repo, the branch, tag or commit to download (default: the main branch).
        """
        if dtype is not None and torch_dtype is not None and resolve_dtype(dtype) != resolve_dtype(torch_dtype):
            raise ValueError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; pass only dtype")
        dtype = resolve_dtype(dtype if dtype is not None else torch_dtype)
        root = Path(path_or_repo)
        if root.exists() and revision is not None:
            raise ValueError(f"revision={revision!r} applies to a Hub repo, and {str(path_or_repo)!r} is a local "
                             "folder")
        if not root.exists():
            name = str(path_or_repo)
            looks_like_repo = name.count("/") == 1 and not name.startswith((".", "/", "~"))
            if not looks_like_repo:
                raise FileNotFoundError(f"model folder {name!r} does not exist")
            try:
                root = Path(huggingface_hub.snapshot_download(name, revision=revision, library_name="uniemo"))
            except Exception as e:  # offline, unknown repo or revision, no access
                raise FileNotFoundError(
                    f"{name!r} is neither a local model folder nor a reachable Hub repo ({e})") from e
        info = read_manifest(root)
        classifier = EmoClassifier.from_pretrained(root / "classifier")
        fusion = EmoFusion.from_pretrained(root / "fusion")
        space = EmotionSpace.load(root)
        attributes = AttributeTargets.load(root)
        correlation = None
        if "correlation" in info["components"]:
            correlation = CorrelationTable.load(root)
        base = info.get("diffusion", "")
        diffusion_path = str(root / base) if base.startswith("diffusion") else base
        sd = load_stable_diffusion(diffusion_path, torch_dtype=dtype, safety_checker=safety_checker)
        placeholder_id = add_placeholder_token(sd.tokenizer, sd.text_encoder, info.get("placeholder_token",
                                                                                        PLACEHOLDER_TOKEN))
        pipe = cls(classifier, fusion, space, attributes, sd, placeholder_id, correlation,
                   resolution=int(info.get("resolution", 512)), info={**info, "path": str(root)})
        return pipe.to(device, dtype)

    def save_pretrained(self, directory: str | os.PathLike, repo_id: str | None = None) -> None:
        """Write the model folder (``from_pretrained`` loads it back) with its model card.

        The card keeps the loaded folder's own text (``uniemo.model_folder.kept_card``); ``repo_id`` is the
        name its usage snippet loads (``push_to_hub`` passes the repo), else the folder.
        """
        out = Path(directory)
        kept = kept_card(self.info.get("path"))  # read before anything is written: the folder may be this one
        out.mkdir(parents=True, exist_ok=True)
        self.classifier.save_pretrained(out / "classifier")
        self.fusion.save_pretrained(out / "fusion")
        self.emotion_space.save(out)
        self.attributes.save(out)
        components = list(REQUIRED_COMPONENTS)
        if self.correlation is not None:
            self.correlation.save(out)
            components.append("correlation")
        base = self.info.get("diffusion", "diffusion/")
        if base.startswith("diffusion") or Path(base).exists():
            if (out / "diffusion").exists():
                shutil.rmtree(out / "diffusion")
            self.sd.save_pretrained(out / "diffusion", safe_serialization=True)
            base = "diffusion/"
            components.append("diffusion")
        info = dict(self.info)
        info.update(emotions=list(self.emotions), components=components, diffusion=base,
                    placeholder_token=PLACEHOLDER_TOKEN, resolution=self.resolution)
        write_manifest(out, info, name=repo_id, **kept)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    revision: str | None = None, commit_message: str = "Upload UniEmo model",
                    create_pr: bool = False):
        """Upload the model folder (``save_pretrained``, card included) to a Hugging Face Hub model repo.

        The repo is created when it does not exist (``private`` then applies), and so is the branch
        ``revision``; the folder is written to a temporary folder and uploaded in one commit.

        Returns:
            the ``huggingface_hub.CommitInfo`` of the upload.
        """
        api = huggingface_hub.HfApi(token=token)
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        repo_id = getattr(url, "repo_id", None) or repo_id  # "name" alone becomes "user/name"
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory(prefix="uniemo-push-") as folder:
            self.save_pretrained(folder, repo_id=repo_id)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision,
                                     commit_message=commit_message, create_pr=create_pr)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None
           ) -> UniEmoPipeline:
        """Move every module (classifier, fusion, Stable Diffusion and its safety checker) to ``device`` and,
        when ``dtype`` is given, cast them all to it (``from_pretrained`` always does, so a loaded pipeline runs in
        one dtype; a pipeline assembled from a training run's modules keeps theirs)."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device is not None:
            self.device = torch.device(device)
        cast = {} if dtype is None else {"dtype": resolve_dtype(dtype)}
        for module in (*self._own_modules(), self.sd):
            module.to(self.device, **cast)
        self._negative = None
        return self

    def _own_modules(self) -> tuple[torch.nn.Module, ...]:
        """The modules ``to`` moves besides Stable Diffusion (a subclass with other parts names its own)."""
        return self.classifier, self.fusion

    @property
    def dtype(self) -> torch.dtype:
        """The classifier's (and, after ``from_pretrained``, every module's) dtype."""
        return next(self.classifier.parameters()).dtype

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.classifier.config.emotions)

    @property
    def transfer_guidance_scale(self) -> float:
        """Transfer's default guidance: the folder's ``transfer_guidance_scale``, else ``guidance_scale``."""
        return self.defaults.get("transfer_guidance_scale", self.defaults["guidance_scale"])

    @property
    def transfer_nouns(self) -> tuple[str, ...]:
        """Objects to offer for ``transfer``: the folder's ``transfer_nouns`` (UniEmo-Tiny lists the 16 objects
        its SD knows), else EmoGen's neutral objects for SD 1.5 (``NEUTRAL_NOUNS``). Any other noun is allowed."""
        return tuple(self.info.get("transfer_nouns") or NEUTRAL_NOUNS)

    def set_scheduler(self, name: str) -> None:
        """Swap the sampler: ``unipc`` (official), ``ddim``, ``dpm++``, ``euler``, ``pndm``."""
        self.sd.scheduler = build_scheduler(name, self.sd.scheduler.config)
        self.defaults["scheduler"] = name

    # ---------------------------------------------------------------------------------------- understanding

    def _emotion_index(self, emotion: str) -> int:
        if not isinstance(emotion, str) or emotion not in self.emotions:
            raise ValueError(f"unknown emotion {emotion!r}; choose one of {', '.join(self.emotions)}")
        return self.emotions.index(emotion)

    @torch.no_grad()
    def classify(self, image, top_attributes: int = 3) -> EmotionPrediction:
        """Emotion probabilities, scene/object attention maps and nearest attributes for one image.

        Args:
            image: a PIL image (any mode; animations use their first frame), a path, or a uint8 array.
        """
        image = open_image(image)
        pixel_values = self.transform(image).unsqueeze(0).to(self.device, self.dtype)
        out = self.classifier(pixel_values, return_attention=True)
        probs = out.logits.float().softmax(-1)[0].cpu()
        scene_pts, object_pts = self.classifier.project_queries(out)

        def unit(att: torch.Tensor) -> np.ndarray:
            a = att[0].float().cpu().numpy()
            return a / a.max() if a.max() > 0 else a

        return EmotionPrediction(
            label=self.emotions[int(probs.argmax())],
            probs={e: float(p) for e, p in zip(self.emotions, probs)},
            scene_attention=unit(out.scene_attention),
            object_attention=unit(out.object_attention),
            scene_attributes=self.attributes.nearest(scene_pts, "scene", top_attributes)[0],
            object_attributes=self.attributes.nearest(object_pts, "object", top_attributes)[0],
            view=_center_crop(image),
        )

    # -------------------------------------------------------------------------------------------- condition

    @torch.no_grad()
    def _condition_from_embeds(self, cls_embed, scene_embed, object_embed, emotion_idx: int) -> torch.Tensor:
        """Fuse three (B, D) embeds into c (B, C) with α looked up at the target emotion (``fuse_features``)."""
        dev, dt = self.device, self.dtype
        feats = EmoFeatures(cls_embed=cls_embed.to(dev, dt), scene_embed=scene_embed.to(dev, dt),
                            object_embed=object_embed.to(dev, dt))
        return fuse_features(self.classifier, self.fusion, self.correlation, feats, emotion_idx)

    @torch.no_grad()
    def component_for_noun(self, emotion: str, noun: str) -> int | None:
        """The part of ``emotion``'s mixture whose mean object embedding lies nearest the noun's text embedding
        in the attribute base (``None`` when the space has one Gaussian per emotion, the classifier has no expert
        queries, or the noun is not in the base). Transfer draws from it, so that the condition's own objects
        agree with the noun where the emotion allows it (ours; with one Gaussian per emotion, the paper's)."""
        e = self._emotion_index(emotion)
        space = self.emotion_space
        if space.components is None or not self.classifier.config.use_queries or \
                noun not in self.attributes.names("object"):
            return None
        means = space.components["means"]["object"][e].to(self.device, self.dtype)
        points = F.normalize(self.classifier.object_proj(means), dim=-1)
        similarity = self.attributes.similarities(points, "object")[:, self.attributes.names("object").index(noun)]
        similarity[space.components["weights"][e].to(similarity.device) == 0] = -float("inf")  # parts never drawn
        return int(similarity.argmax())

    @torch.no_grad()
    def condition(self, emotion: str, num_images: int = 1, seed: int = 0, image=None,
                  component: int | None = None) -> torch.Tensor:
        """The fused condition c (num_images, C) for ``emotion``: from the emotion space (seed ``seed + i`` for
        row i; ``component``: from that part of the emotion's mixture only), or, when ``image`` is given, from that
        reference image's own features (same row repeated)."""
        e = self._emotion_index(emotion)
        if image is not None:
            pixel_values = self.transform(open_image(image)).unsqueeze(0).to(self.device, self.dtype)
            f = self.classifier.forward_features(pixel_values)
            embeds = [f.cls_embed, f.scene_embed, f.object_embed]
            embeds = [t.float().expand(num_images, -1) for t in embeds]
        else:
            scale = float(self.defaults.get("space_scale", 1.0))  # 1: the fitted Gaussians as they are
            rows = [self.emotion_space.sample(e, 1, torch.Generator().manual_seed(seed + i), scale=scale,
                                              component=component) for i in range(num_images)]
            embeds = [torch.cat([r[k] for r in rows]).to(self.device) for k in ("cls", "scene", "object")]
        return self._condition_from_embeds(*embeds, e)

    @torch.no_grad()
    def prompt_embeds(self, condition: torch.Tensor, noun: str | None = None) -> torch.Tensor:
        """c (B, C) -> prompt_embeds (B, 77, C) through the placeholder (``"<emotion>"`` or ``"<emotion> noun"``)."""
        prompt = PLACEHOLDER_TOKEN if noun is None else f"{PLACEHOLDER_TOKEN} {noun}"
        dtype = self.sd.text_encoder.dtype
        return encode_condition(self.sd.text_encoder, self.sd.tokenizer, condition.to(self.device, dtype), prompt,
                                self.placeholder_id)

    # ------------------------------------------------------------------------------------------- generation

    def _settings(self, num_images, num_inference_steps, guidance_scale, size) -> tuple[int, float, int]:
        """Fill in the defaults (``None``) and validate (``uniemo.sampling.check_settings``); returns (steps,
        guidance, size)."""
        steps = self.defaults["num_inference_steps"] if num_inference_steps is None else num_inference_steps
        guidance = self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        return check_settings(num_images, steps, guidance, self.resolution if size is None else size)

    @torch.no_grad()
    def _negative_embeds(self) -> torch.Tensor:
        """The empty prompt's embeddings (1, 77, C), encoded once."""
        if self._negative is None:
            self._negative = encode_prompt(self.sd.text_encoder, self.sd.tokenizer, [""])
        return self._negative

    def _render(self, prompt_embeds: torch.Tensor, seed: int, settings: tuple[int, float, int],
                callback: Callback | None) -> list[Image.Image]:
        return render(self.sd, prompt_embeds, self._negative_embeds(), seed, settings, callback)

    def _render_composed(self, base_embeds: torch.Tensor, noun_embeds: torch.Tensor, noun_guidance: float,
                         seed: int, settings: tuple[int, float, int], callback: Callback | None
                         ) -> list[Image.Image]:
        """Transfer with the noun weighed on its own (``uniemo.sampling.render_composed``)."""
        return render_composed(self.sd, base_embeds, noun_embeds, self._negative_embeds(), noun_guidance, seed,
                               settings, callback, self.device)

    def generate(self, emotion: str, num_images: int = 1, seed: int = 0, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, size: int | None = None, image=None,
                 callback: Callback | None = None) -> list[Image.Image]:
        """Images evoking ``emotion`` (condition from the emotion space, or from a reference ``image``)."""
        self._emotion_index(emotion)
        settings = self._settings(num_images, num_inference_steps, guidance_scale, size)
        c = self.condition(emotion, num_images, seed, image=image)
        return self._render(self.prompt_embeds(c), seed, settings, callback)

    def transfer(self, emotion: str, noun: str, num_images: int = 1, seed: int = 0,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 size: int | None = None, image=None, noun_guidance_scale: float | None = None,
                 callback: Callback | None = None) -> list[Image.Image]:
        """The emotion carried onto a neutral object: prompt ``"<emotion> {noun}"``.

        ``noun_guidance_scale`` (g_n; default: the model folder's recommendation, else none) weighs what the noun
        adds to the condition separately from the condition itself (see ``_render_composed``); one more UNet
        pass per step. None, or g_n equal to ``guidance_scale``, is the plain guidance of docs/method.md. A larger g_n
        shows the noun more often, at the cost of the emotion when the condition brings objects of its own.
        ``guidance_scale`` (g) defaults to the folder's ``transfer_guidance_scale`` when it recommends one (a
        lower g with a larger g_n lets the noun win over the condition's own objects), else to its
        ``guidance_scale``.
        """
        self._emotion_index(emotion)
        noun = check_noun(noun, self.transfer_nouns)
        if guidance_scale is None:
            guidance_scale = self.transfer_guidance_scale
        settings = self._settings(num_images, num_inference_steps, guidance_scale, size)
        if noun_guidance_scale is None:
            noun_guidance_scale = self.defaults.get("noun_guidance_scale")
        if noun_guidance_scale is not None:
            check_guidance("noun_guidance_scale", noun_guidance_scale)
        component = None if image is not None else self.component_for_noun(emotion, noun)
        c = self.condition(emotion, num_images, seed, image=image, component=component)
        if noun_guidance_scale is None or float(noun_guidance_scale) == settings[1]:
            return self._render(self.prompt_embeds(c, noun), seed, settings, callback)
        return self._render_composed(self.prompt_embeds(c), self.prompt_embeds(c, noun), float(noun_guidance_scale),
                                     seed, settings, callback)

    def neutral(self, noun: str, num_images: int = 1, seed: int = 0, num_inference_steps: int | None = None,
                guidance_scale: float | None = None, size: int | None = None,
                callback: Callback | None = None) -> list[Image.Image]:
        """The noun alone, plain text prompt, same seeds: the comparison image for ``transfer``."""
        noun = check_noun(noun, self.transfer_nouns)
        settings = self._settings(num_images, num_inference_steps, guidance_scale, size)
        embeds = encode_prompt(self.sd.text_encoder, self.sd.tokenizer, [noun] * num_images)
        return self._render(embeds, seed, settings, callback)

    def fuse_condition(self, emotion_a: str, emotion_b: str, weight: float, num_images: int = 1,
                       seed: int = 0) -> torch.Tensor:
        """c = w·c(a) + (1 − w)·c(b), each with its own α; c(b) uses the seeds ``seed + i + 1_000_003``."""
        self._emotion_index(emotion_a)
        self._emotion_index(emotion_b)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be a number in [0, 1] (1 gives {emotion_a!r} alone), got {weight!r}")
        ca = self.condition(emotion_a, num_images, seed)
        cb = self.condition(emotion_b, num_images, seed + 1_000_003)
        return weight * ca + (1.0 - weight) * cb

    def fuse(self, emotion_a: str, emotion_b: str, weight: float = 0.5, num_images: int = 1, seed: int = 0,
             num_inference_steps: int | None = None, guidance_scale: float | None = None, size: int | None = None,
             callback: Callback | None = None) -> list[Image.Image]:
        """Weighted fusion of two emotions (``weight`` in [0, 1]; 1 gives ``emotion_a`` alone)."""
        settings = self._settings(num_images, num_inference_steps, guidance_scale, size)
        c = self.fuse_condition(emotion_a, emotion_b, weight, num_images, seed)
        return self._render(self.prompt_embeds(c), seed, settings, callback)
