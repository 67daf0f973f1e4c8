"""The pretrained networks behind the generation metrics, and how their weights are found and loaded.

    FID     torch-fidelity's feature extractor (InceptionV3 pool, 2048-d) from a local file, or CLIP image
            embeddings as an offline stand-in (``clip_fid_extractor``); ``fid_batch`` runs either on one batch
            of files
    LPIPS   lpips' AlexNet variant with its shipped linear layers and the AlexNet trunk loaded explicitly
            (``build_lpips``), or a seeded random trunk for tests
    Sem-C   torchvision's ResNet-50 with CSAIL's Places365 or torchvision's ImageNet weights
            (``load_resnet50``), their softmax over files (``resnet_probabilities``)

``resnet_probabilities`` cuts its files into fixed batches and shares the batches out over the processes of
``accelerate launch`` / ``torchrun`` (``uniemo.distributed.map_chunks``): every process gets every result, the
same whatever the number of processes.

Weight files are opened with ``torch.load(weights_only=True)``; the Inception file is checked that way before
torch-fidelity unpickles it. Offline, a missing default is a ``MissingWeightsError`` that names the option of
eval/score.py that passes the file. The metrics themselves (Fréchet distance, pairs, means) are the pure
functions of ``uniemo.metrics``; eval/score.py wires both together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lpips
import numpy as np
import torch
import torch.nn.functional as F
import torch_fidelity.utils
import torchvision
from accelerate import PartialState
from PIL import Image
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torchvision import transforms as T

from uniemo.clip import load_clip
from uniemo.constants import CLIP_MEAN, CLIP_STD
from uniemo.data.base import load_image
from uniemo.distributed import chunked, map_chunks
from uniemo.probe import clip_image_embeddings
from uniemo.score_settings import ALEXNET_FILE, INCEPTION_FILE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (B, 3, S, S) uint8 -> (features (B, D),), the calling convention of torch-fidelity's extractors
Extractor = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


class MissingWeightsError(RuntimeError):
    """A metric's pretrained weights are neither given nor downloadable; the message says what to pass."""


# ----------------------------------------------------------------------------------------------------------
# FID


def fid_feature_extractor(name: str, weights_path: str | None, device: torch.device) -> tuple[Extractor, str]:
    """torch-fidelity's feature extractor ``name`` (the FID layer), from ``weights_path`` when given.

    Returns:
        (extractor on ``device``, the name of its FID feature layer)

    Raises:
        MissingWeightsError: the default weights could not be downloaded (offline) and no file was given.
    """
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"unknown feature extractor {name!r}; registered: {', '.join(FEATURE_EXTRACTORS_REGISTRY)}")
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")
    kwargs: dict[str, Any] = {"verbose": False}
    if weights_path is not None:
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"--inception-weights {weights_path} not found")
        # torch-fidelity unpickles the file fully; make sure it holds tensors only before it does.
        torch.load(weights_path, map_location="cpu", weights_only=True)
        kwargs["feature_extractor_weights_path"] = weights_path
    try:
        extractor = torch_fidelity.utils.create_feature_extractor(name, [layer], cuda=False, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        if weights_path is not None:
            raise
        raise MissingWeightsError(
            f"could not get the weights of torch-fidelity's {name!r} ({error}). Offline, pass the file with "
            f"--inception-weights (torch-fidelity's {INCEPTION_FILE}) or leave fid out of --metrics"
        ) from error
    return extractor.to(device), layer


def clip_fid_extractor(clip: str | None, device) -> Extractor:
    """The Fréchet distance on CLIP image embeddings (the ``clip`` model, a folder or Hub id) instead of
    InceptionV3 pool features, for where Inception weights cannot be had. Reported under the extractor's name;
    not comparable with Inception FID."""
    if not clip:
        raise ValueError("--fid-feature-extractor clip needs --clip (a CLIP folder or Hub id)")
    model, _ = load_clip(clip, device)
    size = model.config.vision_config.image_size
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)

    def extract(x_uint8):  # (B, 3, S, S) uint8 -> (features (B, E),) like torch-fidelity's extractors
        x = F.interpolate(x_uint8.float() / 255, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
        return (clip_image_embeddings(model, (x - mean) / std, normalize=False),)

    return extract


def fid_batch(extractor: Extractor, paths: Sequence[str], size: int, device) -> torch.Tensor:
    """One batch of image files -> (B, D) float64 features on the CPU: RGB, resized to size² (bicubic, no crop,
    as EmoGen), uint8."""
    batch = [np.asarray(load_image(p).resize((size, size), Image.BICUBIC)) for p in paths]
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous().to(device)  # (B, 3, S, S) uint8
    with torch.no_grad():
        return extractor(x)[0].double().cpu()


# ----------------------------------------------------------------------------------------------------------
# LPIPS


def alexnet_state_dict(weights_path: str | None) -> tuple[dict, str]:
    """torchvision's AlexNet weights: the given file, else the $TORCH_HOME cache, else a download.

    Returns:
        (state dict, where it came from)
    """
    if weights_path is not None:
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"--alexnet-weights {weights_path} not found")
        return torch.load(weights_path, map_location="cpu", weights_only=True), weights_path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True), str(cached)
    try:
        state = torch.hub.load_state_dict_from_url(f"https://download.pytorch.org/models/{ALEXNET_FILE}",
                                                   map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise MissingWeightsError(
            f"LPIPS needs torchvision's AlexNet weights and they could not be downloaded ({error}). Pass "
            f"--alexnet-weights {ALEXNET_FILE}, put the file in {cached.parent}, or leave LPIPS out with --metrics"
        ) from error
    return state, f"downloaded to {cached}"


def build_lpips(weights_path: str | None, random_trunk: bool) -> tuple[lpips.LPIPS, str]:
    """``lpips.LPIPS(net="alex")`` with its shipped linear layers and the AlexNet trunk loaded explicitly.

    Returns:
        (model, description of the trunk's weights)
    """
    # pnet_rand=True stops lpips from downloading the trunk; the trunk is then filled from our file. The random
    # trunk is drawn from a fixed seed (without disturbing the caller's RNG), so its scores are reproducible.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    if random_trunk:
        return model, "random AlexNet trunk, seed 0 (test setting: not comparable with LPIPS numbers)"
    state, source = alexnet_state_dict(weights_path)
    alexnet = torchvision.models.alexnet()
    alexnet.load_state_dict(state)
    # lpips slices alexnet.features into slice1..slice5, keeping the layer numbers as child names.
    for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for child_name, layer in part.named_children():
            layer.load_state_dict(alexnet.features[int(child_name)].state_dict())
    return model, source


# ----------------------------------------------------------------------------------------------------------
# Sem-C (ResNet-50s)


def build_resnet50(num_classes: int) -> torch.nn.Module:
    """torchvision's ResNet-50 architecture (a seam the tests replace with a small network)."""
    return torchvision.models.resnet50(num_classes=num_classes)


def checkpoint_state_dict(obj: Any) -> dict:
    """A state dict from a checkpoint object: unwrap ``{"state_dict": ...}``, strip DataParallel's ``module.``."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state dict, got {type(obj).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_resnet50(path: str, num_classes: int) -> torch.nn.Module:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ResNet-50 weights {path} not found")
    model = build_resnet50(num_classes)
    model.load_state_dict(checkpoint_state_dict(torch.load(path, map_location="cpu", weights_only=True)))
    return model.eval()


def resnet_probabilities(model: torch.nn.Module, paths: Sequence[str], batch_size: int, device,
                         desc: str | None = None, state: PartialState | None = None) -> torch.Tensor:
    """(N,) files -> (N, K) softmax: Resize 256, CenterCrop 224, ImageNet mean/std (EmoGen's Sem-C input); batches
    of ``batch_size`` shared out over the processes."""
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    model.to(device)

    def probabilities(batch: list[str]) -> torch.Tensor:
        x = torch.stack([transform(load_image(p)) for p in batch]).to(device)
        with torch.no_grad():
            return model(x).float().softmax(dim=1).cpu()

    return torch.cat(map_chunks(chunked(paths, batch_size), probabilities, desc, state))
