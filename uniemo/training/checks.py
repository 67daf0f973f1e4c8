"""Consistency checks of a training config, run right after parsing and before any model loads.

A mistake such as a ViT-B/32 stage 1 paired with a ViT-L/14 probe used to surface as a shape error at the first
step, after Stable Diffusion had loaded; here it is a one-line message naming both sides. Only JSON, YAML and
file headers are read (no torch import), so a bad command answers at once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from uniemo.config import load_yaml

# File endings of a CLIP given as one OpenAI-format weights file instead of a transformers folder.
CLIP_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` that is not a local path (the Hub resolves it, or the offline cache does)."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def require_path(value: str | None, key: str, what: str) -> Path:
    """``value`` as an existing path, or a ``FileNotFoundError`` naming the config key."""
    if not value:
        raise ValueError(f"{key} is not set: pass {key}=PATH ({what})")
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{key}={value!r} does not exist ({what})")
    return path


def check_clip_source(clip: str | None, key: str = "model.clip") -> None:
    """A CLIP is null (a random tiny one), a Hub id, a transformers folder or an OpenAI-format weights file."""
    if clip is None or looks_like_hub_id(clip):
        return
    path = require_path(clip, key, "a CLIP folder with config.json, an OpenAI-format .pt / .safetensors file, "
                                   "or a Hub id such as openai/clip-vit-base-patch32")
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{key}={clip!r} is a folder without config.json: not a transformers CLIP folder")
    if path.is_file() and path.suffix not in CLIP_FILE_SUFFIXES:
        raise ValueError(f"{key}={clip!r}: a CLIP file must end in one of {', '.join(CLIP_FILE_SUFFIXES)}")


def clip_identity(clip: str | None, preset: str | None = None) -> str:
    """A name that tells two CLIPs apart: the Hub id, ``random-<preset>`` for the random tiny CLIP, or the
    SHA-256 of a local CLIP's weights (so a moved folder still matches itself)."""
    if clip is None:
        return f"random-{preset or 'vit-b-32'}"
    path = Path(clip).expanduser()
    if not path.exists():
        return clip
    weights = path if path.is_file() else next(
        (path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
    if weights is None:
        return str(path.resolve())
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def stage1_clip(stage1: Path) -> tuple[str | None, str]:
    """(the CLIP stage 1 was trained from, its identity), from the stage-1 folder's ``uniemo.json``."""
    info = _read_json(stage1 / "uniemo.json") if (stage1 / "uniemo.json").is_file() else {}
    clip = info.get("clip")
    identity = info.get("clip_identity") or clip_identity(clip, info.get("clip_preset"))
    return clip, identity


def probe_clip(run: Path) -> tuple[str | None, str] | None:
    """(the CLIP a ``train/probe.py`` run embedded with, its identity), or ``None`` when ``run`` is not a probe
    run (a model folder carries its table without the probe's config)."""
    config = run / "config.yaml"
    if not config.is_file():
        return None
    model = (load_yaml(config.read_text()) or {}).get("model", {})
    metrics = _read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    clip = model.get("clip")
    return clip, metrics.get("clip_identity") or clip_identity(clip, model.get("preset"))


def check_stage1_inputs(cfg) -> None:
    """Stage 1 (``train/understanding.py``): the data, the CLIP, the classifier to continue from, the resume."""
    require_path(cfg.data.root, "data.root", "the dataset folder")
    check_clip_source(cfg.model.clip)
    if cfg.model.init_classifier:
        require_path(cfg.model.init_classifier, "model.init_classifier", "a saved classifier folder")
    if cfg.resume and cfg.resume != "latest":
        require_path(cfg.resume, "resume", "a checkpoint folder, or latest")


def check_probe_inputs(cfg) -> None:
    """The probe (``train/probe.py``): the data and the CLIP."""
    require_path(cfg.data.root, "data.root", "the dataset folder")
    check_clip_source(cfg.model.clip)


def _table_dim(folder: Path) -> int | None:
    meta = folder / "correlation.json"
    return _read_json(meta).get("embed_dim") if meta.is_file() else None


def check_joint_inputs(cfg) -> None:
    """Stage 2 (``train/joint.py``): every path, and that the α table lives in stage 1's CLIP text space.

    The α table's attributes are matched with stage 1's contrastive projections, so the probe must have used
    the CLIP stage 1 was trained from: same projection width and the same CLIP (name, or weights hash).
    """
    mc = cfg.model
    stage1 = require_path(mc.stage1, "model.stage1", "the stage-1 model folder, train/understanding.py's final/")
    classifier_dir = stage1 / "classifier" if (stage1 / "classifier").is_dir() else stage1
    if not (classifier_dir / "config.json").is_file():
        raise FileNotFoundError(f"model.stage1={mc.stage1!r} holds no classifier (classifier/config.json)")
    classifier = _read_json(classifier_dir / "config.json")
    if mc.diffusion and not looks_like_hub_id(mc.diffusion):
        diffusion = require_path(mc.diffusion, "model.diffusion", "a diffusers folder or a Hub id")
        if not (diffusion / "model_index.json").is_file():
            raise FileNotFoundError(f"model.diffusion={mc.diffusion!r} is not a diffusers folder (no "
                                    "model_index.json)")
    require_path(cfg.data.root, "data.root", "the dataset folder")
    for key, value, what in (("model.init_fusion", mc.init_fusion, "a fusion/ or model folder"),
                             ("feedback.manifest", cfg.feedback.manifest, "train/feedback.py's manifest.jsonl"),
                             ("memory_bank.probe", cfg.memory_bank.probe, "a train/probe.py run folder")):
        if value:
            require_path(value, key, what)
    if cfg.resume and cfg.resume != "latest":
        require_path(cfg.resume, "resume", "a checkpoint folder, or latest")
    if not mc.correlation:
        return
    table = require_path(mc.correlation, "model.correlation", "a train/probe.py run or a model folder")
    if not (table / "correlation.json").is_file():
        raise FileNotFoundError(f"model.correlation={mc.correlation!r} holds no α table (correlation.json); "
                                "train/probe.py writes one")
    s1_clip, s1_id = stage1_clip(stage1)
    width, table_width = classifier.get("proj_dim"), _table_dim(table)
    probe = probe_clip(table)
    if width is not None and table_width is not None and width != table_width:
        probe_name = probe[0] if probe else "its CLIP"
        raise ValueError(f"model.stage1 was trained with CLIP {s1_clip!r} ({width}-d projections) but the α table "
                         f"in model.correlation={mc.correlation!r} was built with {probe_name!r} ({table_width}-d "
                         "text embeddings): run train/probe.py with the stage-1 CLIP")
    if probe is not None and probe[1] != s1_id:
        raise ValueError(f"model.stage1 was trained with CLIP {s1_clip!r} but the α table in "
                         f"model.correlation={mc.correlation!r} was built with CLIP {probe[0]!r}: they must be "
                         "the same CLIP (run train/probe.py with model.clip set to the stage-1 CLIP)")
