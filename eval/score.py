"""Score a folder written by eval/generate.py: FID, LPIPS, Emo-A, Sem-C, Sem-D (METHOD.md section 8).

Cheap next to generation, so it can be re-run whenever a metric changes. The definitions follow EmoGen's
evaluation code (``emogen_emoset_notes.md`` section 3) with its quirks fixed; ``--emogen-compat`` reproduces
the quirks (LPIPS fed [0, 1] images, pair pools leaking across emotions, 10 pairs per emotion, CLIP inputs
rescaled twice for Sem-D) to compare with published numbers, and the output says so.

    fid             torch-fidelity's feature extractor (InceptionV3 pool, 2048-d; images resized to 299²):
                    per emotion against the reference images of that emotion, and aggregated (pooled
                    statistics of all emotions on both sides, the number papers report)
    lpips           lpips (AlexNet) over seeded random pairs of images of the same emotion, inputs in [-1, 1],
                    mean over the pairs of an emotion, then over emotions
    emo_a           top-1 accuracy of a one-layer probe on CLIP image embeddings (train/probe.py
                    probe_layers=1, --emo-probe) or of EmoGen's Linear(768, 8) head (--emogen-head, on raw
                    CLIP ViT-L/14 features) against the intended emotion
    sem_c           mean over images of the larger top-1 softmax of a Places365 and an ImageNet ResNet-50
                    (--places365-weights and --imagenet-weights); without them the CLIP zero-shot variant,
                    reported as ``semantic_clarity_clip``: the larger top-1 zero-shot probability over the
                    attribute base's scenes and objects (the model's attributes.json, or --attribute-names)
    sem_d           1 − cosine (and the MSE variant, EmoGen's Sem-D column) between CLIP image embeddings of
                    the same pairs as LPIPS

Usage:
    python eval/score.py --generated runs/gen --reference /data/EmoSet-118K/image \\
        --inception-weights weights/weights-inception-2015-12-05-6726825d.pth \\
        --alexnet-weights weights/alexnet-owt-7be5be79.pth --emogen-head weights/emogen_emo_cls.pth \\
        --clip openai/clip-vit-large-patch14 --places365-weights weights/resnet50_places365.pth.tar \\
        --imagenet-weights weights/resnet50-0676ba61.pth
    python eval/score.py --generated runs/gen-tiny --reference-from-dataset emoshapes:data/emoshapes:test \\
        --emo-probe runs/emo-a-tiny --metrics emo_a,sem_c,sem_d

Offline, the library defaults cannot download: pass the weight files (the AlexNet backbone may also sit in
``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``), or leave a metric out with ``--metrics``. Weight
files given here are opened with ``torch.load(weights_only=True)`` (the Inception file is checked that way
before torch-fidelity opens it).

Writes one JSON (default ``<generated>/scores.json``): ``summary`` (the headline numbers), ``metrics`` (each
metric's details: per emotion, pair counts, which weights), ``protocol`` (``corrected`` or ``emogen-compat`` and
its quirks), ``num_images``, the generation's model and settings (from generation.json), the reference, the
settings of this run, versions and a timestamp.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import TYPE_CHECKING, Any, Sequence  # noqa: E402

if TYPE_CHECKING:  # torch is imported inside main so that --help stays fast
    import torch

logger = logging.getLogger("uniemo.eval.score")

METRICS: tuple[str, ...] = ("fid", "lpips", "emo_a", "sem_c", "sem_d")
DEFAULT_FID_EXTRACTOR = "inception-v3-compat"  # torch-fidelity's FID extractor
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's download, in $TORCH_HOME
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet (ImageNet V1), in $TORCH_HOME/hub/checkpoints
EMOGEN_CLIP = "openai/clip-vit-large-patch14"  # the CLIP of EmoGen's Emo-A head and Sem-D
EMOGEN_COMPAT_PAIRS = 10
EMOGEN_QUIRKS: tuple[str, ...] = (
    "LPIPS fed [0, 1] images (LPIPS expects [-1, 1])",
    "pairs of emotion k drawn from the images of emotions 0..k (the pool is never reset)",
    f"{EMOGEN_COMPAT_PAIRS} pairs per emotion",
    "Sem-D CLIP inputs rescaled by 1/255 twice (near-black images)",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingWeightsError(RuntimeError):
    """A metric's pretrained weights are neither given nor downloadable; the message says what to pass."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval/score.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", required=True, help="folder written by eval/generate.py")
    parser.add_argument("--out", default=None, help="result JSON (default: <generated>/scores.json)")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {', '.join(METRICS)}")
    parser.add_argument("--kind", default="generate", choices=("generate", "transfer"),
                        help="which manifest images to score (default: the generation set)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the LPIPS / Sem-D pairs")
    parser.add_argument("--pairs", type=int, default=100, help="LPIPS / Sem-D pairs per emotion (default 100)")
    parser.add_argument("--emogen-compat", action="store_true", help="reproduce EmoGen's evaluation quirks")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    fid = parser.add_argument_group("FID")
    fid.add_argument("--reference", default=None, help="reference folder: <emotion>/*.jpg|png per emotion")
    fid.add_argument("--reference-from-dataset", default=None, metavar="NAME:ROOT:SPLIT",
                     help="reference images from a dataset split, e.g. emoshapes:data/emoshapes:test")
    fid.add_argument("--inception-weights", default=None, help=f"local {INCEPTION_FILE} (torch-fidelity's)")
    fid.add_argument("--fid-feature-extractor", default=DEFAULT_FID_EXTRACTOR,
                     help="a torch-fidelity feature extractor name (tests register a tiny one), or 'clip': "
                          "the Fréchet distance on --clip image embeddings (offline stand-in, reported as such)")
    fid.add_argument("--fid-size", type=int, default=299, help="images are resized to this square first (299)")
    lp = parser.add_argument_group("LPIPS")
    lp.add_argument("--alexnet-weights", default=None, help=f"torchvision's {ALEXNET_FILE}")
    lp.add_argument("--lpips-random-trunk", action="store_true",
                    help="random AlexNet trunk (tests only; the number is labelled as such and is not LPIPS)")
    clip = parser.add_argument_group("CLIP metrics (Emo-A, Sem-C CLIP variant, Sem-D)")
    clip.add_argument("--emo-probe", default=None, help="train/probe.py run folder (probe_layers=1) for Emo-A")
    clip.add_argument("--emogen-head", default=None, help="EmoGen's Emo-A head (.pt/.pth, Linear(768, 8))")
    clip.add_argument("--clip", default=None,
                      help=f"CLIP for Emo-A / Sem-D (Hub id or folder); default: the probe run's, else {EMOGEN_CLIP}")
    semc = parser.add_argument_group("Sem-C")
    semc.add_argument("--places365-weights", default=None, help="resnet50_places365.pth.tar (CSAIL)")
    semc.add_argument("--imagenet-weights", default=None, help="torchvision resnet50-0676ba61.pth (ImageNet V1)")
    semc.add_argument("--attribute-names", default=None,
                      help="attribute base for semantic_clarity_clip: a JSON {scenes, objects} or one name a line "
                           "(default: the model folder's attributes.json)")
    return parser


# ----------------------------------------------------------------------------------------------------------
# inputs


def read_generated(folder: Path, kind: str) -> tuple[list[str], list[str], list[int], dict[str, Any]]:
    """The images of ``kind`` in a generate.py folder, less those the safety checker flagged (blacked out, they
    would bias every score; their number is ``info["excluded_nsfw"]``).

    Returns:
        (emotions, paths, labels (index into emotions), generation info (``{}`` without generation.json))
    """
    from uniemo.data.feedback import read_manifest

    info_path = folder / "generation.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    records = [r for r in read_manifest(folder) if r.get("kind", "generate") == kind]
    if not records:
        raise ValueError(f"{folder}/manifest.jsonl lists no image of kind {kind!r}")
    info = {**info, "excluded_nsfw": sum(bool(r.get("nsfw")) for r in records)}
    records = [r for r in records if not r.get("nsfw")]
    if not records:
        raise ValueError(f"every image of kind {kind!r} in {folder} was flagged by the safety checker")
    emotions = list(info.get("emotions") or dict.fromkeys(r["emotion"] for r in records))
    missing = [r["path"] for r in records if not os.path.isfile(r["path"])]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) of the manifest are missing, e.g. {missing[0]}")
    return emotions, [r["path"] for r in records], [emotions.index(r["emotion"]) for r in records], info


def reference_images(folder: Path, emotions: Sequence[str]) -> dict[str, list[str]]:
    """``folder/<emotion>/**`` image files per emotion (an emotion without a folder gets none)."""
    from uniemo.data.base import list_images

    out = {}
    for emotion in emotions:
        sub = folder / emotion
        out[emotion] = [str(sub / p) for p in list_images(sub)] if sub.is_dir() else []
    return out


def write_reference_from_dataset(spec: str, out_dir: Path) -> dict[str, Any]:
    """``NAME:ROOT:SPLIT`` -> the split's images copied into ``out_dir/<emotion>/`` (the --reference layout)."""
    from uniemo.data import DATASET_NAMES, build_dataset

    name, sep, rest = spec.partition(":")
    root, sep2, split = rest.rpartition(":")
    if not sep or not sep2 or not root or not split:
        raise ValueError(f"--reference-from-dataset takes NAME:ROOT:SPLIT (e.g. emoshapes:data/emoshapes:test), "
                         f"got {spec!r}")
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    dataset = build_dataset(name, root, split)
    for number, entry in enumerate(dataset.entries):
        target = out_dir / dataset.labels[entry.label]
        target.mkdir(parents=True, exist_ok=True)
        suffix = Path(entry.path).suffix.lower()
        # a running number keeps files of equal names (from different folders) apart
        if suffix in (".jpg", ".jpeg", ".png"):
            shutil.copyfile(entry.path, target / f"{number:06d}{suffix}")
        else:  # other formats are re-encoded, since the reference layout is jpg/png
            load_rgb(entry.path).save(target / f"{number:06d}.png")
    return {"dataset": name, "root": root, "split": split, "num_images": len(dataset.entries)}


def load_rgb(path: str):
    from uniemo.data.base import load_image

    return load_image(path)


# ----------------------------------------------------------------------------------------------------------
# FID


def fid_feature_extractor(name: str, weights_path: str | None, device: torch.device):
    """torch-fidelity's feature extractor ``name`` (the FID layer), from ``weights_path`` when given.

    Raises:
        MissingWeightsError: the default weights could not be downloaded (offline) and no file was given.
    """
    import torch
    import torch_fidelity.utils
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

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
            f"--inception-weights (torch-fidelity's {INCEPTION_FILE}) or leave FID out with --metrics "
            f"{','.join(m for m in METRICS if m != 'fid')}"
        ) from error
    return extractor.to(device), layer


def clip_fid_extractor(clip: str | None, device):
    """``--fid-feature-extractor clip``: the Fréchet distance on CLIP image embeddings (the ``--clip`` model)
    instead of InceptionV3 pool features, for where Inception weights cannot be had. Reported under the
    extractor's name; not comparable with Inception FID."""
    import torch
    import torch.nn.functional as F

    from uniemo.clip import load_clip
    from uniemo.constants import CLIP_MEAN, CLIP_STD
    from uniemo.probe import clip_image_embeddings

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


def fid_features(extractor, paths: Sequence[str], size: int, batch_size: int, device, desc: str):
    """(N,) image files -> (N, D) features: RGB, resized to size² (bicubic, no crop, as EmoGen), uint8."""
    import numpy as np
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    chunks = []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
        batch = [np.asarray(load_rgb(p).resize((size, size), Image.BICUBIC)) for p in paths[start:start + batch_size]]
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous().to(device)  # (B, 3, S, S) uint8
        with torch.no_grad():
            chunks.append(extractor(x)[0].double().cpu())
    return torch.cat(chunks)


def score_fid(args, emotions, paths, labels, reference: dict[str, list[str]], device) -> dict[str, Any]:
    """Per-emotion and aggregated FID (pooled statistics of all emotions on both sides)."""
    import torch

    from eval.metrics import feature_statistics, frechet_distance

    if args.fid_feature_extractor == "clip":
        extractor, layer = clip_fid_extractor(args.clip, device), "clip image embedding"
    else:
        extractor, layer = fid_feature_extractor(args.fid_feature_extractor, args.inception_weights, device)
    per_emotion: dict[str, float | None] = {}
    pooled_gen, pooled_ref = [], []
    for e, emotion in enumerate(emotions):
        gen_paths = [p for p, label in zip(paths, labels) if label == e]
        if not gen_paths:
            continue
        gen = fid_features(extractor, gen_paths, args.fid_size, args.batch_size, device, f"fid {emotion}")
        pooled_gen.append(gen)
        if not reference.get(emotion):
            logger.warning("no reference image for %s: its FID is left out", emotion)
            per_emotion[emotion] = None
            continue
        ref = fid_features(extractor, reference[emotion], args.fid_size, args.batch_size, device,
                           f"fid reference {emotion}")
        pooled_ref.append(ref)
        per_emotion[emotion] = frechet_distance(*feature_statistics(gen), *feature_statistics(ref))
    if not pooled_ref:
        raise ValueError("no reference image for any emotion: check --reference (it needs <emotion>/ folders)")
    # pooled statistics: all emotions' features together, on both sides
    aggregated = frechet_distance(*feature_statistics(torch.cat(pooled_gen)),
                                  *feature_statistics(torch.cat(pooled_ref)))
    return {
        "aggregated": aggregated,
        "per_emotion": per_emotion,
        "feature_extractor": args.fid_feature_extractor,
        "feature_layer": layer,
        "weights": args.inception_weights or "library default (downloaded or $TORCH_HOME cache)",
        "image_size": args.fid_size,
        "num_reference": {e: len(reference.get(e, [])) for e in emotions},
    }


# ----------------------------------------------------------------------------------------------------------
# LPIPS


def alexnet_state_dict(weights_path: str | None) -> tuple[dict, str]:
    """torchvision's AlexNet weights: the given file, else the $TORCH_HOME cache, else a download.

    Returns:
        (state dict, where it came from)
    """
    import torch

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


def build_lpips(weights_path: str | None, random_trunk: bool):
    """``lpips.LPIPS(net="alex")`` with its shipped linear layers and the AlexNet trunk loaded explicitly.

    Returns:
        (model, description of the trunk's weights)
    """
    import lpips
    import torchvision

    import torch

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


def score_lpips(args, emotions, paths, pairs, pair_groups, device) -> dict[str, Any]:
    import torch
    from torchvision.transforms.functional import to_tensor
    from tqdm.auto import tqdm

    from eval.metrics import emotion_mean

    model, trunk = build_lpips(args.alexnet_weights, args.lpips_random_trunk)
    model.to(device)
    values = []
    for start in tqdm(range(0, len(pairs), args.batch_size), desc="lpips", unit="batch"):
        chunk = pairs[start:start + args.batch_size]
        a = torch.stack([to_tensor(load_rgb(paths[i])) for i in chunk[:, 0].tolist()]).to(device)  # [0, 1]
        b = torch.stack([to_tensor(load_rgb(paths[j])) for j in chunk[:, 1].tolist()]).to(device)
        if not args.emogen_compat:
            a, b = a * 2 - 1, b * 2 - 1  # LPIPS expects [-1, 1]; EmoGen fed [0, 1]
        with torch.no_grad():
            values.append(model(a, b).flatten().double().cpu())
    values = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
    mean, per_group = emotion_mean(values, pair_groups)
    return {"mean": mean, "per_emotion": {emotions[g]: v for g, v in per_group.items()}, "num_pairs": len(values),
            "net": "alex", "trunk_weights": trunk, "random_trunk": bool(args.lpips_random_trunk),
            "input_range": "[0, 1] (emogen-compat)" if args.emogen_compat else "[-1, 1]"}


# ----------------------------------------------------------------------------------------------------------
# Sem-C (ResNet-50s)


def build_resnet50(num_classes: int):
    """torchvision's ResNet-50 architecture (a seam the tests replace with a small network)."""
    import torchvision

    return torchvision.models.resnet50(num_classes=num_classes)


def checkpoint_state_dict(obj: Any) -> dict:
    """A state dict from a checkpoint object: unwrap ``{"state_dict": ...}``, strip DataParallel's ``module.``."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state dict, got {type(obj).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_resnet50(path: str, num_classes: int):
    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f"ResNet-50 weights {path} not found")
    model = build_resnet50(num_classes)
    model.load_state_dict(checkpoint_state_dict(torch.load(path, map_location="cpu", weights_only=True)))
    return model.eval()


def resnet_probabilities(model, paths, batch_size, device, desc):
    """(N,) files -> (N, K) softmax: Resize 256, CenterCrop 224, ImageNet mean/std (EmoGen's Sem-C input)."""
    import torch
    from torchvision import transforms as T
    from tqdm.auto import tqdm

    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    model.to(device)
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
        x = torch.stack([transform(load_rgb(p)) for p in paths[start:start + batch_size]]).to(device)
        with torch.no_grad():
            out.append(model(x).float().softmax(dim=1).cpu())
    return torch.cat(out)


def read_attribute_names(path: str | None, model: str | None) -> tuple[list[str], list[str], str]:
    """The attribute base for ``semantic_clarity_clip``: (scenes, objects, source)."""
    if path is None:
        if not model or not (Path(model) / "attributes.json").is_file():
            raise ValueError("semantic_clarity_clip needs an attribute base: the generation's model folder has no "
                             "attributes.json; pass --attribute-names FILE, or the ResNet weights for Sem-C")
        path = str(Path(model) / "attributes.json")
    text = Path(path).read_text()
    if path.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, list):
            return [], [str(x) for x in data], path
        return list(data.get("scenes", [])), list(data.get("objects", [])), path
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return [], names, path  # a plain list is one base


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Score the folder; returns the result dict (also written to ``--out``)."""
    args = build_parser().parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown} in --metrics; choose from {', '.join(METRICS)}")
    if args.emogen_compat:
        args.pairs = EMOGEN_COMPAT_PAIRS
    if "fid" in metrics and not (args.reference or args.reference_from_dataset):
        raise ValueError("FID needs reference images: pass --reference DIR or --reference-from-dataset NAME:ROOT:SPLIT "
                         "(or leave fid out of --metrics)")
    if "emo_a" in metrics and not (args.emo_probe or args.emogen_head):
        raise ValueError("Emo-A needs a scorer: --emo-probe RUN (train/probe.py) or --emogen-head FILE "
                         "(or leave emo_a out of --metrics)")
    if args.emo_probe and args.emogen_head:
        raise ValueError("pass either --emo-probe or --emogen-head, not both")
    if bool(args.places365_weights) != bool(args.imagenet_weights):
        raise ValueError("Sem-C needs both --places365-weights and --imagenet-weights (or neither: CLIP variant)")

    import torch
    import torch.nn.functional as F

    from eval.metrics import accumulating_pool_pairs, emotion_accuracy, semantic_clarity, semantic_diversity
    from eval.metrics import within_emotion_pairs
    from uniemo.scoring import ImageScorer, clip_for_probe_run, load_emogen_head, load_probe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    folder = Path(args.generated)
    emotions, paths, labels, info = read_generated(folder, args.kind)
    labels_t = torch.tensor(labels, dtype=torch.long)
    model_dir = info.get("model")
    result: dict[str, Any] = {
        "generated": str(folder),
        "kind": args.kind,
        "model": model_dir,
        "generation_settings": info.get("settings"),
        "excluded_nsfw": info["excluded_nsfw"],  # images flagged by the safety checker, left out of every score
        "emotions": emotions,
        "num_images": {e: int((labels_t == i).sum()) for i, e in enumerate(emotions) if bool((labels_t == i).any())},
        "protocol": {"name": "emogen-compat" if args.emogen_compat else "corrected",
                     "quirks": list(EMOGEN_QUIRKS) if args.emogen_compat else []},
        "settings": {k: v for k, v in vars(args).items()},
        "metrics": {},
        "summary": {},
    }

    # Pairs shared by LPIPS and Sem-D, as in EmoGen's script
    if args.emogen_compat:
        pairs, pair_groups = accumulating_pool_pairs(labels_t, args.pairs, args.seed)
    else:
        pairs = within_emotion_pairs(labels_t, args.pairs, args.seed)
        pair_groups = labels_t[pairs[:, 0]]

    # FID
    if "fid" in metrics:
        with tempfile.TemporaryDirectory(prefix="uniemo-reference-") as tmp:
            if args.reference_from_dataset:
                result["reference"] = write_reference_from_dataset(args.reference_from_dataset, Path(tmp))
                ref_root = Path(tmp)
            else:
                ref_root = Path(args.reference)
                if not ref_root.is_dir():
                    raise FileNotFoundError(f"--reference {ref_root} is not a folder")
                result["reference"] = {"folder": str(ref_root)}
            reference = reference_images(ref_root, emotions)
            fid = score_fid(args, emotions, paths, labels, reference, device)
        result["metrics"]["fid"] = fid
        result["summary"]["fid"] = fid["aggregated"]

    # LPIPS
    if "lpips" in metrics:
        lp = score_lpips(args, emotions, paths, pairs, pair_groups, device)
        result["metrics"]["lpips"] = lp
        result["summary"]["lpips_random_trunk" if lp["random_trunk"] else "lpips"] = lp["mean"]

    # CLIP embeddings (once per CLIP) for Emo-A, the CLIP Sem-C and Sem-D
    needs_clip = {"emo_a", "sem_d"} & set(metrics) or ("sem_c" in metrics and not args.places365_weights)
    if needs_clip:
        probe = None
        if args.emogen_head:
            probe = load_emogen_head(args.emogen_head, emotions)
        elif args.emo_probe:
            probe = load_probe(args.emo_probe)
        if args.clip is not None:
            from uniemo.clip import load_clip

            clip_model, tokenizer = load_clip(args.clip)
            clip_name = args.clip
        elif args.emo_probe:
            clip_model, tokenizer = clip_for_probe_run(args.emo_probe)
            clip_name = f"the CLIP of {args.emo_probe}"
        else:
            from uniemo.clip import load_clip

            clip_model, tokenizer = load_clip(EMOGEN_CLIP)
            clip_name = EMOGEN_CLIP
        scorer = ImageScorer(clip_model, tokenizer, probe, device=device, batch_size=args.batch_size)
        raw = scorer.embed(paths, normalize=False, progress="clip embeddings")  # (N, E) unnormalised

        if "emo_a" in metrics:
            if tuple(probe.emotions) != tuple(emotions):
                raise ValueError(f"the Emo-A scorer's emotions {probe.emotions} differ from the images' {emotions}")
            # the one-layer probe normalises its input itself; EmoGen's head takes the raw features
            emo = emotion_accuracy(scorer.emotion_logits(raw), labels_t, len(emotions))
            emo["per_emotion_accuracy"] = {emotions[c]: v for c, v in emo.pop("per_class_accuracy").items()}
            emo.update(scorer=f"emogen-head:{args.emogen_head}" if args.emogen_head else f"probe:{args.emo_probe}",
                       clip=clip_name)
            result["metrics"]["emo_a"] = emo
            result["summary"]["emo_a"] = emo["accuracy"]

        if "sem_c" in metrics and not args.places365_weights:
            scenes, objects, source = read_attribute_names(args.attribute_names, model_dir)
            scorer.scene_names, scorer.object_names = scenes, objects
            scene_probs, object_probs = scorer.attribute_probabilities(F.normalize(raw, dim=-1))
            probs = [p for p in (scene_probs, object_probs) if p is not None]
            value = semantic_clarity(*probs)
            result["metrics"]["semantic_clarity_clip"] = {
                "mean": value, "clip": clip_name, "attribute_base": source, "num_scenes": len(scenes),
                "num_objects": len(objects),
                "note": "CLIP zero-shot variant: not comparable with the ResNet-50 Sem-C"}
            result["summary"]["sem_c_clip"] = value

        if "sem_d" in metrics:
            embeds = raw
            if args.emogen_compat:
                embeds = scorer.embed(paths, normalize=False, double_rescale=True, progress="clip (emogen-compat)")
            semd = semantic_diversity(embeds, pairs, pair_groups)
            semd["per_emotion"] = {emotions[g]: v for g, v in semd.pop("per_group").items()}
            semd.update(clip=clip_name, features="raw projected CLIP image embeddings",
                        input="rescaled twice (emogen-compat)" if args.emogen_compat else "CLIP preprocessing")
            result["metrics"]["sem_d"] = semd
            result["summary"]["sem_d_mse"] = semd["mse"]
            result["summary"]["sem_d_cosine"] = semd["cosine"]

    # Sem-C with the two ResNet-50s
    if "sem_c" in metrics and args.places365_weights:
        places = resnet_probabilities(load_resnet50(args.places365_weights, 365), paths, args.batch_size, device,
                                      "sem-c places365")
        imagenet = resnet_probabilities(load_resnet50(args.imagenet_weights, 1000), paths, args.batch_size, device,
                                        "sem-c imagenet")
        value = semantic_clarity(places, imagenet)
        result["metrics"]["semantic_clarity"] = {"mean": value, "places365_weights": args.places365_weights,
                                                 "imagenet_weights": args.imagenet_weights}
        result["summary"]["sem_c"] = value

    result["seconds"] = round(time.time() - t0, 2)
    result["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["versions"] = {"python": platform.python_version(), "torch": torch.__version__}
    out = Path(args.out) if args.out else folder / "scores.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("scores written to %s: %s", out, result["summary"])
    return result


if __name__ == "__main__":
    main()
