"""Score a folder of generated images (``uniemo.generation_plan``'s layout): FID, LPIPS, Emo-A, Sem-C, Sem-D.

``score_folder(folder, ScoreSettings(...))`` returns the result eval/score.py writes as JSON: ``summary`` (the
headline numbers), ``metrics`` (each metric's details: per emotion, pair counts, which weights), ``protocol``
(``corrected`` or ``emogen-compat`` and its quirks), ``num_images``, the generation's model and settings (from
generation.json), the reference, the settings, versions and a timestamp. The definitions follow EmoGen's
evaluation code with its quirks fixed; ``emogen_compat`` reproduces them (``EMOGEN_QUIRKS``).

Under ``accelerate launch`` / ``torchrun`` the batches of every network (FID features, LPIPS pairs, CLIP
embeddings, the Sem-C ResNets) are shared out over the processes with ``uniemo.distributed.map_chunks``: the
batches are fixed by ``batch_size``, whoever computes them, so 1 or N processes give the same numbers.

    fid     per emotion against the reference images of that emotion, and aggregated (pooled statistics of
            all emotions on both sides, the number papers report), in the summary under the extractor's name:
            ``fid_inception`` (torch-fidelity's InceptionV3), ``fid_clip`` (the CLIP stand-in) or
            ``fid_<name>``; ``uniemo.features`` extracts the features, ``uniemo.fid_reference`` keeps the
            reference's statistics on disk (``metrics.fid.reference_cache``: hit, miss or off)
    lpips   over seeded random pairs of images of the same emotion, inputs in [-1, 1], mean over the pairs of
            an emotion, then over emotions
    emo_a   top-1 accuracy of a one-layer probe on CLIP image embeddings (train/probe.py probe_layers=1) or of
            EmoGen's Linear(768, 8) head on raw CLIP ViT-L/14 features, against the intended emotion
    sem_c   mean over images of the larger top-1 softmax of a Places365 and an ImageNet ResNet-50; without them
            the CLIP zero-shot variant (``semantic_clarity_clip``) over the attribute base's scenes and objects
    sem_d   1 − cosine (and the MSE variant, EmoGen's Sem-D column) between CLIP image embeddings of the same
            pairs as LPIPS
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torch_fidelity
import transformers
from accelerate import PartialState
from torchvision.transforms.functional import to_tensor

from uniemo.clip import load_clip
from uniemo.data.base import load_image
from uniemo.data.feedback import read_manifest
from uniemo.distributed import chunked, map_chunks, process_state
from uniemo.features import (Extractor, build_lpips, clip_fid_extractor, fid_batch, fid_feature_extractor,
                             load_resnet50, resnet_probabilities)
from uniemo.fid_reference import path_identity, reference_from_dataset, reference_images, reference_statistics
from uniemo.metrics import (accumulating_pool_pairs, emotion_accuracy, emotion_mean, feature_statistics,
                            frechet_distance, semantic_clarity, semantic_diversity, within_emotion_pairs)
from uniemo.score_settings import (DEFAULT_FID_EXTRACTOR, EMOGEN_CLIP, EMOGEN_COMPAT_PAIRS, EMOGEN_QUIRKS,
                                   INCEPTION_FILE, ScoreSettings)
from uniemo.scoring import ImageScorer, clip_for_probe_run, load_emogen_head, load_probe

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# inputs


def read_generated(folder: Path, kind: str) -> tuple[list[str], list[str], list[int], dict[str, Any]]:
    """The images of ``kind`` in a generated folder, less those the safety checker flagged (blacked out, they
    would bias every score; their number is ``info["excluded_nsfw"]``).

    Returns:
        (emotions, paths, labels (index into emotions), generation info (``{}`` without generation.json))
    """
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
# the metrics


def fid_extractor(settings: ScoreSettings, device: torch.device) -> tuple[Extractor, str, dict[str, Any]]:
    """The FID feature extractor of ``settings`` on ``device``.

    Returns:
        (extractor, its feature layer, its description for the reference cache's key: name, library version,
        layer, weights identity, image size, device type)
    """
    name = settings.fid_feature_extractor
    if name == "clip":
        extractor, layer = clip_fid_extractor(settings.clip, device), "clip image embedding"
        weights = path_identity(settings.clip) if os.path.exists(settings.clip) else f"hub:{settings.clip}"
        library = f"transformers {transformers.__version__}"
    else:
        extractor, layer = fid_feature_extractor(name, settings.inception_weights, device)
        default = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
        if settings.inception_weights:
            weights = path_identity(settings.inception_weights)
        elif name == DEFAULT_FID_EXTRACTOR and default.is_file():
            weights = path_identity(default)
        else:
            weights = "library default"
        library = f"torch-fidelity {torch_fidelity.__version__}"
    description = {"name": name, "library": library, "layer": layer, "weights": weights,
                   "image_size": settings.fid_size, "device": torch.device(device).type}
    return extractor, layer, description


def grouped_features(extract: Callable[[list[str]], torch.Tensor], groups: Mapping[str, Sequence[str]],
                     batch_size: int, desc: str, state: PartialState) -> dict[str, torch.Tensor]:
    """``{name: files}`` -> ``{name: (N, D) features}``: each group cut into batches of ``batch_size``, all batches
    shared out over the processes in one pass (``map_chunks``), so the result does not depend on their number."""
    chunks = [(name, chunk) for name, files in groups.items() for chunk in chunked(list(files), batch_size)]
    out: dict[str, list[torch.Tensor]] = {name: [] for name in groups}
    for (name, _), features in zip(chunks, map_chunks([c for _, c in chunks], extract, desc, state)):
        out[name].append(features)
    return {name: torch.cat(parts) for name, parts in out.items()}


def score_fid(settings: ScoreSettings, emotions, paths, labels, reference: dict[str, list[str]], device,
              state: PartialState) -> dict[str, Any]:
    """Per-emotion and aggregated FID (pooled statistics of all emotions on both sides); the reference's
    statistics come from the cache when it holds them (``uniemo.fid_reference``)."""
    extractor, layer, description = fid_extractor(settings, device)
    size = settings.fid_size

    def extract(files: list[str]) -> torch.Tensor:
        return fid_batch(extractor, files, size, device)

    generated = {e: [p for p, label in zip(paths, labels) if label == i] for i, e in enumerate(emotions)}
    generated = {e: files for e, files in generated.items() if files}
    for emotion in generated:
        if not reference.get(emotion):
            logger.warning("no reference image for %s: its FID is left out", emotion)
    used = {e: list(reference[e]) for e in generated if reference.get(e)}
    if not used:
        raise ValueError("no reference image for any emotion: check --reference (it needs <emotion>/ folders)")
    gen = grouped_features(extract, generated, settings.batch_size, "fid generated", state)
    cache_dir = None if settings.no_cache else settings.cache_dir
    ref, cache = reference_statistics(
        used, lambda files: grouped_features(extract, files, settings.batch_size, "fid reference", state),
        description, cache_dir, state)
    per_emotion: dict[str, float | None] = {
        e: frechet_distance(*feature_statistics(gen[e]), *ref["per_emotion"][e]) if e in used else None
        for e in generated}
    # pooled statistics: all emotions' features together, on both sides
    aggregated = frechet_distance(*feature_statistics(torch.cat(list(gen.values()))), *ref["pooled"])
    return {
        "aggregated": aggregated,
        "summary_key": settings.fid_summary_key,
        "per_emotion": per_emotion,
        "feature_extractor": settings.fid_feature_extractor,
        "feature_layer": layer,
        "weights": (settings.clip if settings.fid_feature_extractor == "clip" else settings.inception_weights)
        or "library default (downloaded or $TORCH_HOME cache)",
        "image_size": size,
        "num_reference": {e: len(reference.get(e, [])) for e in emotions},
        **cache,
    }


def score_lpips(settings: ScoreSettings, emotions, paths, pairs, pair_groups, device,
                state: PartialState) -> dict[str, Any]:
    model, trunk = build_lpips(settings.alexnet_weights, settings.lpips_random_trunk)
    model.to(device)

    def distances(chunk: list[list[int]]) -> torch.Tensor:
        a = torch.stack([to_tensor(load_image(paths[i])) for i, _ in chunk]).to(device)  # [0, 1]
        b = torch.stack([to_tensor(load_image(paths[j])) for _, j in chunk]).to(device)
        if not settings.emogen_compat:
            a, b = a * 2 - 1, b * 2 - 1  # LPIPS expects [-1, 1]; EmoGen fed [0, 1]
        with torch.no_grad():
            return model(a, b).flatten().double().cpu()

    values = map_chunks(chunked(pairs.tolist(), settings.batch_size), distances, "lpips", state)
    values = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
    mean, per_group = emotion_mean(values, pair_groups)
    return {"mean": mean, "per_emotion": {emotions[g]: v for g, v in per_group.items()}, "num_pairs": len(values),
            "net": "alex", "trunk_weights": trunk, "random_trunk": bool(settings.lpips_random_trunk),
            "input_range": "[0, 1] (emogen-compat)" if settings.emogen_compat else "[-1, 1]"}


def clip_scorer(settings: ScoreSettings, emotions: Sequence[str], device) -> tuple[ImageScorer, str]:
    """The CLIP (and the Emo-A scorer, when one is given) behind Emo-A, the CLIP Sem-C and Sem-D.

    Returns:
        (scorer, the name the result gives its CLIP)
    """
    probe = None
    if settings.emogen_head:
        probe = load_emogen_head(settings.emogen_head, emotions)
    elif settings.emo_probe:
        probe = load_probe(settings.emo_probe)
    if settings.clip is not None:
        clip_model, tokenizer = load_clip(settings.clip)
        clip_name = settings.clip
    elif settings.emo_probe:
        clip_model, tokenizer = clip_for_probe_run(settings.emo_probe)
        clip_name = f"the CLIP of {settings.emo_probe}"
    else:
        clip_model, tokenizer = load_clip(EMOGEN_CLIP)
        clip_name = EMOGEN_CLIP
    return ImageScorer(clip_model, tokenizer, probe, device=device, batch_size=settings.batch_size), clip_name


def clip_embeddings(scorer: ImageScorer, paths: Sequence[str], desc: str, state: PartialState,
                    double_rescale: bool = False) -> torch.Tensor:
    """(N, E) raw projected CLIP image embeddings, batches of the scorer's batch size shared out over the
    processes (each batch is one ``ImageScorer.embed`` call, whoever makes it)."""
    return torch.cat(map_chunks(chunked(list(paths), scorer.batch_size),
                                lambda batch: scorer.embed(batch, normalize=False, double_rescale=double_rescale),
                                desc, state))


def score_clip_metrics(settings: ScoreSettings, result: dict[str, Any], emotions, paths, labels, pairs,
                       pair_groups, device, state: PartialState) -> None:
    """Emo-A, the CLIP variant of Sem-C and Sem-D from one pass of CLIP embeddings, into ``result``."""
    metrics = settings.metrics
    scorer, clip_name = clip_scorer(settings, emotions, device)
    raw = clip_embeddings(scorer, paths, "clip embeddings", state)  # (N, E) unnormalised

    if "emo_a" in metrics:
        if tuple(scorer.probe.emotions) != tuple(emotions):
            raise ValueError(f"the Emo-A scorer's emotions {scorer.probe.emotions} differ from the images' "
                             f"{emotions}")
        # the one-layer probe normalises its input itself; EmoGen's head takes the raw features
        emo = emotion_accuracy(scorer.emotion_logits(raw), labels, len(emotions))
        emo["per_emotion_accuracy"] = {emotions[c]: v for c, v in emo.pop("per_class_accuracy").items()}
        emo.update(scorer=f"emogen-head:{settings.emogen_head}" if settings.emogen_head
                   else f"probe:{settings.emo_probe}", clip=clip_name)
        result["metrics"]["emo_a"] = emo
        result["summary"]["emo_a"] = emo["accuracy"]

    if "sem_c" in metrics and not settings.places365_weights:
        scenes, objects, source = read_attribute_names(settings.attribute_names, result["model"])
        scorer.scene_names, scorer.object_names = scenes, objects
        scene_probs, object_probs = scorer.attribute_probabilities(F.normalize(raw, dim=-1))
        value = semantic_clarity(*[p for p in (scene_probs, object_probs) if p is not None])
        result["metrics"]["semantic_clarity_clip"] = {
            "mean": value, "clip": clip_name, "attribute_base": source, "num_scenes": len(scenes),
            "num_objects": len(objects), "note": "CLIP zero-shot variant: not comparable with the ResNet-50 Sem-C"}
        result["summary"]["sem_c_clip"] = value

    if "sem_d" in metrics:
        embeds = raw
        if settings.emogen_compat:
            embeds = clip_embeddings(scorer, paths, "clip (emogen-compat)", state, double_rescale=True)
        semd = semantic_diversity(embeds, pairs, pair_groups)
        semd["per_emotion"] = {emotions[g]: v for g, v in semd.pop("per_group").items()}
        semd.update(clip=clip_name, features="raw projected CLIP image embeddings",
                    input="rescaled twice (emogen-compat)" if settings.emogen_compat else "CLIP preprocessing")
        result["metrics"]["sem_d"] = semd
        result["summary"]["sem_d_mse"] = semd["mse"]
        result["summary"]["sem_d_cosine"] = semd["cosine"]


def score_semantic_clarity(settings: ScoreSettings, paths, device, state: PartialState) -> dict[str, Any]:
    """Sem-C with the two ResNet-50s (Places365 and ImageNet)."""
    places = resnet_probabilities(load_resnet50(settings.places365_weights, 365), paths, settings.batch_size, device,
                                  "sem-c places365", state)
    imagenet = resnet_probabilities(load_resnet50(settings.imagenet_weights, 1000), paths, settings.batch_size,
                                    device, "sem-c imagenet", state)
    return {"mean": semantic_clarity(places, imagenet), "places365_weights": settings.places365_weights,
            "imagenet_weights": settings.imagenet_weights}


# ----------------------------------------------------------------------------------------------------------


def score_folder(folder: str | os.PathLike, settings: ScoreSettings) -> dict[str, Any]:
    """Score the images of ``settings.kind`` in ``folder``; returns the result (see the module docstring).

    Under ``accelerate launch`` / ``torchrun`` every process must call it: the batches of every network are shared
    out over the processes (each on its own device) and every process returns the same numbers, equal to one
    process's.
    """
    settings.validate()
    if settings.emogen_compat:
        settings = replace(settings, pairs=EMOGEN_COMPAT_PAIRS)
    metrics = settings.metrics
    t0 = time.time()
    state = process_state()
    if state.num_processes > 1:
        device = state.device  # cuda:<local rank>, or the CPU of this process
    else:
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if settings.device == "auto"
                              else settings.device)
    folder = Path(folder)
    emotions, paths, labels, info = read_generated(folder, settings.kind)
    labels_t = torch.tensor(labels, dtype=torch.long)
    result: dict[str, Any] = {
        "generated": str(folder),
        "kind": settings.kind,
        "model": info.get("model"),
        "generation_settings": info.get("settings"),
        "excluded_nsfw": info["excluded_nsfw"],  # images flagged by the safety checker, left out of every score
        "emotions": emotions,
        "num_images": {e: int((labels_t == i).sum()) for i, e in enumerate(emotions)
                       if bool((labels_t == i).any())},
        "protocol": {"name": "emogen-compat" if settings.emogen_compat else "corrected",
                     "quirks": list(EMOGEN_QUIRKS) if settings.emogen_compat else []},
        "settings": {"generated": str(folder), **asdict(settings)},
        "metrics": {},
        "summary": {},
    }

    # Pairs shared by LPIPS and Sem-D, as in EmoGen's script
    if settings.emogen_compat:
        pairs, pair_groups = accumulating_pool_pairs(labels_t, settings.pairs, settings.seed)
    else:
        pairs = within_emotion_pairs(labels_t, settings.pairs, settings.seed)
        pair_groups = labels_t[pairs[:, 0]]

    if "fid" in metrics:
        if settings.reference_from_dataset:
            reference, result["reference"] = reference_from_dataset(settings.reference_from_dataset)
        else:
            ref_root = Path(settings.reference)
            if not ref_root.is_dir():
                raise FileNotFoundError(f"--reference {ref_root} is not a folder")
            reference, result["reference"] = reference_images(ref_root, emotions), {"folder": str(ref_root)}
        fid = score_fid(settings, emotions, paths, labels, reference, device, state)
        result["metrics"]["fid"] = fid
        result["summary"][fid["summary_key"]] = fid["aggregated"]

    if "lpips" in metrics:
        lp = score_lpips(settings, emotions, paths, pairs, pair_groups, device, state)
        result["metrics"]["lpips"] = lp
        result["summary"]["lpips_random_trunk" if lp["random_trunk"] else "lpips"] = lp["mean"]

    if {"emo_a", "sem_d"} & set(metrics) or ("sem_c" in metrics and not settings.places365_weights):
        score_clip_metrics(settings, result, emotions, paths, labels_t, pairs, pair_groups, device, state)

    if "sem_c" in metrics and settings.places365_weights:
        result["metrics"]["semantic_clarity"] = score_semantic_clarity(settings, paths, device, state)
        result["summary"]["sem_c"] = result["metrics"]["semantic_clarity"]["mean"]

    result["num_processes"] = state.num_processes
    result["seconds"] = round(time.time() - t0, 2)
    result["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["versions"] = {"python": platform.python_version(), "torch": torch.__version__}
    return result
