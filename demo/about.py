"""What the page says about the loaded model: its name (never a server path), the About panel, notices.

What the page shows names the model by its folder name or Hub repo id, never by a path on the server
(``model_name``); free text from the model folder has its absolute paths cut to their last component
(``without_paths``). ``about_markdown`` is the About tab: model, emotions, base models, measured numbers (only
when the model has a report) and the paper.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from demo.limits import demo_limits
from demo.uploads import ASSETS_DIR, REPO_DIR

# An absolute path inside free text (``/home/me/sd-1.5``, ``~/models/x``, ``C:\\models\\x``); relative ones such
# as ``diffusion/`` and ``train/tiny_world.py`` are the folder's own layout and stay.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\~-])(?:~|[A-Za-z]:)?[/\\][^\s`'\"()\[\]<>]+")


def without_paths(text: Any) -> str:
    """``text`` with every absolute path replaced by its last component: what a model folder records (base
    models, the diffusion source) may name folders on the machine that trained it or on this server."""
    return _ABSOLUTE_PATH.sub(lambda m: re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1] or "...", str(text))


def model_name(pipe) -> str:
    """A short name for the loaded model, never a path on the server: the Hub repo id it came from
    (``owner/name``, read from the Hub cache's ``models--owner--name/snapshots/<revision>`` layout), else its
    folder's name (with the run's name for a training run's ``final`` or ``checkpoint-N`` folder)."""
    if pipe.info.get("name"):
        return without_paths(pipe.info["name"])
    path = Path(str(pipe.info.get("path", "")))
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        owner, _, name = parts[-3].removeprefix("models--").partition("--")
        return f"{owner}/{name}"
    if path.name == "final" or path.name.startswith("checkpoint-"):
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return path.name or "unnamed model"


def model_summary(pipe) -> str:
    """One line (Markdown) saying which model is loaded, for the top of the page."""
    device = getattr(getattr(pipe, "device", None), "type", "cpu")
    limits = demo_limits(pipe)
    return (f"**Model:** {model_name(pipe)} · {len(pipe.emotions)} emotions · "
            f"generates {limits.size}x{limits.size} px · running on {device}")


EMOSHAPES_BUILDER = "train/tiny_world.py"  # the only script that trains on EmoShapes alone


def trained_on_emoshapes(pipe) -> bool:
    """True for UniEmo-Tiny: a model that learned only EmoShapes' synthetic scenes.

    The folder's own record decides, not its name (a copy may be called anything): ``uniemo.json`` says
    ``"stage1": "train/tiny_world.py"`` (the builder that writes UniEmo-Tiny; ``train/joint.py`` writes the
    stage-1 folder there instead), or its ``base_models`` say they were pretrained on EmoShapes.
    """
    info = getattr(pipe, "info", {}) or {}
    if str(info.get("stage1", "")).replace("\\", "/").endswith(EMOSHAPES_BUILDER):
        return True
    if str(info.get("dataset", "")).lower() == "emoshapes":  # an EmoSym folder records its training set
        return True
    return any("emoshapes" in str(value).lower() for value in dict(info.get("base_models") or {}).values())


def is_emosym(pipe) -> bool:
    """True when the loaded model is EmoSym's (it answers with rationales, not attention maps)."""
    return hasattr(pipe, "rationale_base")


def input_size(pipe) -> int:
    """The side of the images the understanding model reads (UniEmo's classifier input; EmoSym's: the
    resolution it was trained at)."""
    classifier = getattr(pipe, "classifier", None)
    return classifier.config.image_size if classifier is not None else int(pipe.resolution)


def understand_notice(pipe) -> str:
    """A plain warning for the Understand tab when the model knows only EmoShapes (``trained_on_emoshapes``),
    else ""."""
    if not trained_on_emoshapes(pipe):
        return ""
    return (f"**This model knows only EmoShapes' synthetic scenes.** {model_name(pipe)} is UniEmo-Tiny: it "
            f"learned emotions from EmoShapes, a made-up world of coloured shapes on simple backgrounds drawn at "
            f"{input_size(pipe)} px, and from nothing else. For a photo or any other real image "
            "its answer is not to be trusted; the examples below are EmoShapes scenes.")


def model_fingerprint(pipe) -> str:
    """A short, filesystem-safe id for the loaded weights (folder name + hash of manifest, path, file times).

    Used to keep cached example outputs of one model from being served for another.
    """
    root = Path(pipe.info.get("path", "."))
    digest = hashlib.sha256(json.dumps(pipe.info, sort_keys=True, default=str).encode())
    for weights in sorted(root.rglob("*.safetensors")) if root.is_dir() else []:
        stat = weights.stat()
        digest.update(f"{weights.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name(pipe))[:40]
    return f"{safe}-{digest.hexdigest()[:10]}"


def find_report(pipe) -> Path | None:
    """The measured-numbers file for the loaded model, if one exists.

    ``report.json`` in the model folder comes first. ``assets/report.json`` is used only when the model is the
    bundled one (its folder lies under ``assets/``), so numbers of one model are never shown for another.
    """
    root = Path(pipe.info.get("path", ""))
    candidates = [root / "report.json"]
    try:
        if root.resolve().is_relative_to(ASSETS_DIR):
            candidates.append(ASSETS_DIR / "report.json")
    except OSError:
        pass
    return next((p for p in candidates if p.is_file()), None)


def _numbers(tree: Any, prefix: str = "", depth: int = 2) -> list[tuple[str, float | int]]:
    """Numeric leaves of a JSON tree as ("a / b", value), at most ``depth`` keys deep. Lists (confusion matrices)
    and deeper breakdowns (per class, per noun) stay in the file: they don't read as table rows."""
    rows: list[tuple[str, float | int]] = []
    if isinstance(tree, dict) and depth > 0:
        for key, value in tree.items():
            rows += _numbers(value, f"{prefix} / {key}" if prefix else str(key), depth - 1)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        rows.append((prefix, tree))
    return rows


def _shown_path(path: Path) -> str:
    """A file's name for the page: relative to the repository when it is in it, else ``folder/file``."""
    try:
        return Path(path).resolve().relative_to(REPO_DIR).as_posix()
    except (OSError, ValueError):
        return f"{Path(path).parent.name}/{Path(path).name}".lstrip("/")


def report_markdown(path: Path | None, max_rows: int = 60) -> str:
    """The numbers of a JSON report as a Markdown table, or a sentence saying there are none."""
    if path is None:
        return "No measured numbers are bundled with this model (no `report.json`), so none are shown."
    where = _shown_path(path)
    try:
        rows = _numbers(json.loads(Path(path).read_text()))
    except OSError as e:  # its message would name the full path
        return f"The report `{where}` could not be read ({e.strerror or type(e).__name__}); no numbers are shown."
    except ValueError as e:
        return f"The report `{where}` could not be read ({e}); no numbers are shown."
    if not rows:
        return f"The report `{where}` holds no numbers."
    lines = [f"Measured numbers from `{where}` (breakdowns per class and per object are in the file):", "",
             "| measure | value |", "|---|---|"]
    for key, value in rows[:max_rows]:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key.replace('|', '/')} | {shown} |")
    if len(rows) > max_rows:
        lines.append(f"\n({len(rows) - max_rows} more in the file.)")
    return "\n".join(lines)


def understanding_line(pipe) -> str:
    """The About panel's line on the understanding model: UniEmo's ViT with expert queries, or EmoSym's MLLM."""
    if is_emosym(pipe):
        text = pipe.model.mllm.config.get_text_config()
        return (f"- Understanding: EmoSym, a Qwen2-VL-architecture model (width {text.hidden_size}, "
                f"{text.num_hidden_layers} layers) with the added [EMO] and [CTX] tokens and LoRA; it answers with "
                f"the nearest of {len(pipe.rationale_base)} rationales in its knowledge base.")
    config = pipe.classifier.config
    return (f"- Understanding: a ViT ({getattr(config, 'preset', '?')} preset: {config.image_size} px input, "
            f"{config.patch_size} px patches, width {config.width}, {config.layers} layers) with "
            f"{config.num_scene_queries} scene and {config.num_object_queries} object expert queries.")


def about_markdown(pipe) -> str:
    """The About panel: model, emotions, base models, measured numbers (only if a report exists), paper."""
    info = pipe.info
    base = str(info.get("diffusion", ""))
    diffusion = ("bundled with the model (its `diffusion/` folder)" if base.startswith("diffusion")
                 else f"`{without_paths(base)}`" if base else "not recorded")
    limits = demo_limits(pipe)
    lines = [
        "## About",
        "",
        model_summary(pipe),
        "",
        f"**Emotions ({len(pipe.emotions)}):** {', '.join(pipe.emotions)}",
        "",
        f"**Components:** {', '.join(info.get('components', [])) or 'not recorded'}",
        "",
        "**Base models**",
        "",
        # what the model folder itself records (uniemo.json "base_models"), then what its configs say
        *[f"- {without_paths(name)}: {without_paths(value)}"
          for name, value in dict(info.get("base_models") or {}).items()],
        understanding_line(pipe),
        (f"- Generation: Stable Diffusion, {diffusion}, at {pipe.resolution} px; default sampler "
         f"{pipe.defaults['scheduler']}, {pipe.defaults['num_inference_steps']} steps, "
         f"guidance {pipe.defaults['guidance_scale']}."),
        "",
    ]
    if limits.notice:
        lines += [f"**On this machine:** {limits.notice}", ""]
    lines += [
        "**Measured numbers**",
        "",
        report_markdown(find_report(pipe)),
        "",
        ("**Paper:** Yijie Zhu, Lingsen Zhang, Zitong Yu, Rui Shao, Tao Tan, Liqiang Nie. *UniEmo: Unifying "
         "Emotional Understanding and Generation with Learnable Expert Queries.* IEEE Transactions on Image "
         "Processing (TIP), 2026. [arXiv:2507.23372](https://arxiv.org/abs/2507.23372). This demo is an "
         "independent re-implementation."),
    ]
    return "\n".join(lines)
