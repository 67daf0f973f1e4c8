"""The model folder's descriptor and model card: ``uniemo.json`` and ``README.md`` are written here, and only here.

Every writer of a model folder goes through ``write_manifest``: ``UniEmoPipeline.save_pretrained``, stage 1's and
stage 2's ``write_model_folder`` (``uniemo.training.stage1`` / ``stage2``) and ``train/tiny_world.py``. The
pipeline reads the descriptor back through ``read_manifest``, which checks its format version and components.

The model card is a Hugging Face model card (``huggingface_hub.ModelCard``): YAML front matter with
``library_name``, ``pipeline_tag``, ``tags``, ``base_model`` (the Hub bases the descriptor records), ``datasets``
and ``license``; then a title, what the model is, the folder's own text, the numbers measured if there are any,
how to load it, and the paper. ``pipeline_tag`` is ``text-to-image`` for a complete model (its distinctive output
is the images Stable Diffusion draws for an emotion name, and the Hub lists SD derivatives there; classification
is in its tags) and ``image-classification`` for a stage-1 folder (a classifier only).

The folder's own text (``description`` and ``sections``: UniEmo-Tiny's story of how it was built and tuned) sits
between two HTML comments and is kept when the folder is written again (``kept_card``); what the writer derives
from the descriptor is derived again. No torch import here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from uniemo.constants import NEUTRAL_NOUNS
from uniemo.training.checks import looks_like_hub_id

FORMAT_VERSION = 1
MANIFEST = "uniemo.json"
MODEL_CARD = "README.md"
# what UniEmoPipeline.from_pretrained needs; a stage-1 folder holds only the classifier (and the attributes)
REQUIRED_COMPONENTS = ("classifier", "fusion", "emotion_space", "attributes")

LIBRARY_NAME = "uniemo"
LICENSE = "apache-2.0"
PAPER = "https://arxiv.org/abs/2507.23372"
CITATION = """@article{zhu2026uniemo,
  title   = {UniEmo: Unifying Emotional Understanding and Generation with Learnable Expert Queries},
  author  = {Zhu, Yijie and Zhang, Lingsen and Yu, Zitong and Shao, Rui and Tan, Tao and Nie, Liqiang},
  journal = {IEEE Transactions on Image Processing},
  year    = {2026}
}"""
WRITTEN_HERE = "<!-- written by uniemo.model_folder.write_manifest from uniemo.json -->"
KEPT_START = "<!-- uniemo: the folder's own text, kept when the folder is written again -->"
KEPT_END = "<!-- uniemo: end of the folder's own text -->"
# dataset names as a model card spells them (the descriptor records the loader's name, uniemo.constants)
DATASET_NAMES = {"emoset": "EmoSet", "emoshapes": "EmoShapes", "fi": "FI", "emotionroi": "EmotionROI",
                 "twitter1": "Twitter I", "twitter2": "Twitter II"}
DERIVED_TITLES = ("UniEmo", "UniEmo classifier (stage 1)")
DERIVED_TAGS = ("emotion", "visual-emotion-analysis", "image-classification", "text-to-image", "stable-diffusion")
_HEADLINE = (  # (report.json section, key, label) of eval/tiny_report.py's report, shown when a folder holds one
    ("classification", "test_top1", "test top-1"),
    ("generation", "recognised_by_classifier", "generated images recognised as their emotion (classifier)"),
    ("transfer", "object_recognised", "transfer images showing the requested object"),
)


# ------------------------------------------------------------------------------------------------ the descriptor

def read_manifest(folder: str | os.PathLike, required: Sequence[str] = REQUIRED_COMPONENTS) -> dict[str, Any]:
    """The folder's ``uniemo.json``, checked: a clear error when it is missing, unreadable, written by a newer
    UniEmo (a higher ``format_version``) or lacks one of the ``required`` components."""
    root = Path(folder)
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a UniEmo model folder: no {MANIFEST}")
    try:
        info = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(info, dict):
        raise ValueError(f"{path} holds {type(info).__name__}, not a JSON object")
    version = info.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{root} has format version {version!r}, newer than this UniEmo ({FORMAT_VERSION}): "
                         "upgrade uniemo to load it")
    missing = [c for c in required if c not in info.get("components", [])]
    if missing:
        raise ValueError(f"{root} lacks component(s) {missing}; a model folder needs {list(required)}")
    return info


def write_manifest(folder: str | os.PathLike, info: Mapping[str, Any], *, name: str | None = None,
                   title: str | None = None, description: str | None = None, sections: Sequence[str] = (),
                   tags: Sequence[str] = (), datasets: Sequence[str] = (),
                   metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``uniemo.json`` (``info`` with the current ``format_version`` first) and the model card ``README.md``.

    Args:
        folder: the model folder (created if needed).
        info: the descriptor: ``emotions``, ``components`` and what the writer records (``diffusion``,
            ``placeholder_token``, ``resolution``, ``stage``, ``dataset``, ``clip``, ``base_models``,
            ``sampler``, ...). A loaded pipeline's runtime key ``path`` is dropped.
        name: what the card's usage snippet loads, a Hub repo id or a folder (default: the folder as given when
            relative, ``path/to/<its name>`` when absolute: a card names no machine's paths).
        title: the card's title (default: derived from the descriptor).
        description: the folder's own account of itself, in place of the derived one (Markdown; kept).
        sections: further Markdown sections of the folder's own (kept), after the description.
        tags, datasets: added to the derived ones (front matter).
        metrics: label -> measured value for the card's table; ``None``: the folder's ``report.json`` headline
            numbers and a stage-1 folder's best validation top-1; ``{}``: no table.

    Returns:
        the descriptor as written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    info = {"format_version": FORMAT_VERSION,
            **{k: v for k, v in info.items() if k not in ("format_version", "path")}}
    _write_atomically(out / MANIFEST, json.dumps(info, indent=2) + "\n")
    if metrics is None:
        metrics = default_metrics(out, info)
    if name is None:
        name = out.as_posix() if not out.is_absolute() else f"path/to/{out.resolve().name}"
    card = model_card(info, name=name, title=title, description=description, sections=sections, tags=tags,
                      datasets=datasets, metrics=metrics)
    _write_atomically(out / MODEL_CARD, str(card))
    return info


def _write_atomically(path: Path, text: str) -> None:
    """Write beside, then swap in: a reader never sees half a file."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


# ------------------------------------------------------------------------------------------------ the model card

def is_complete(info: Mapping[str, Any]) -> bool:
    """A model ``UniEmoPipeline`` loads (every required component), not a stage-1 folder."""
    return all(c in info.get("components", []) for c in REQUIRED_COMPONENTS)


def hub_bases(info: Mapping[str, Any]) -> list[str]:
    """The Hub repo ids among the bases the descriptor records (``base_models``, ``clip``, ``diffusion``); local
    folders and files are not Hub models."""
    values = [*dict(info.get("base_models") or {}).values(), info.get("clip"), info.get("diffusion")]
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", v)
                              and looks_like_hub_id(v)))


def dataset_name(info: Mapping[str, Any]) -> str | None:
    """The training set the descriptor records, as a card names it (a plain image ``folder`` names none)."""
    dataset = info.get("dataset")
    if not dataset or dataset == "folder":
        return None
    return DATASET_NAMES.get(str(dataset).lower(), str(dataset))


def card_data(info: Mapping[str, Any], tags: Sequence[str] = (), datasets: Sequence[str] = ()):
    """The front matter (``huggingface_hub.ModelCardData``)."""
    complete = is_complete(info)
    derived_tags = list(DERIVED_TAGS if complete else DERIVED_TAGS[:3])
    dataset = dataset_name(info)
    derived_datasets = [dataset] if dataset else []
    bases = hub_bases(info)
    return ModelCardData(
        library_name=LIBRARY_NAME, license=LICENSE,
        pipeline_tag="text-to-image" if complete else "image-classification",
        tags=list(dict.fromkeys([*derived_tags, *tags])),
        base_model=(bases[0] if len(bases) == 1 else bases) or None,
        datasets=list(dict.fromkeys([*derived_datasets, *datasets])) or None,
    )


def model_card(info: Mapping[str, Any], *, name: str, title: str | None = None, description: str | None = None,
               sections: Sequence[str] = (), tags: Sequence[str] = (), datasets: Sequence[str] = (),
               metrics: Mapping[str, Any] | None = None):
    """The model card (``huggingface_hub.ModelCard``) of a folder with descriptor ``info`` (``write_manifest``)."""
    complete = is_complete(info)
    if title is None:
        title = DERIVED_TITLES[0] if complete else DERIVED_TITLES[1]
    own = [s.strip() for s in ([description] if description else []) + list(sections) if s and s.strip()]
    body = [WRITTEN_HERE, f"# {title}"]
    if description is None:
        body.append(_describe(info))
    if own:
        body.append("\n\n".join([KEPT_START, *own, KEPT_END]))
    if metrics:
        body.append("## Measured\n\n| | |\n|---|---|\n"
                    + "\n".join(f"| {label} | {_format(value)} |" for label, value in metrics.items()))
    body.append("## Usage\n\n" + _usage(info, name))
    body.append(f"## Citation\n\n```bibtex\n{CITATION}\n```")
    front = card_data(info, tags, datasets).to_yaml()
    return ModelCard(f"---\n{front}\n---\n\n" + "\n\n".join(body) + "\n")


def _describe(info: Mapping[str, Any]) -> str:
    emotions = list(info.get("emotions", []))
    dataset = dataset_name(info)
    trained = f" Trained on {dataset}." if dataset else ""
    bases = dict(info.get("base_models") or {})
    if not bases and info.get("clip"):
        bases = {"clip": info["clip"]}
    listed = "; ".join(f"{k}: {_public(v)}" for k, v in bases.items() if v)
    based = f" Built on {listed}." if listed else ""
    if not is_complete(info):
        return (f"The understanding half of a [UniEmo]({PAPER}) model (stage 1): an emotion classifier with "
                f"learnable scene and object expert queries over {len(emotions)} emotions "
                f"({', '.join(emotions)}).{trained}{based} It has no generator: stage 2 (`train/joint.py`) "
                "turns it into a complete model.")
    token = info.get("placeholder_token")
    through = f" through the placeholder token `{token}`" if token else ""
    return (f"A [UniEmo]({PAPER}) model: an emotion classifier with learnable scene and object expert queries "
            f"over {len(emotions)} emotions ({', '.join(emotions)}), fusion mappers that turn what it sees into "
            "one condition token, an emotion space (a Gaussian per emotion) and Stable Diffusion, conditioned"
            f"{through}. One pipeline classifies the emotion an image evokes, generates images that evoke an "
            f"emotion, carries an emotion onto a neutral object (transfer) and blends two (fuse).{trained}{based}")


def _public(value: Any) -> str:
    """A base as a card may name it: a Hub id as a link, a local path by its last part only."""
    text = str(value)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and looks_like_hub_id(text):
        return f"[{text}](https://huggingface.co/{text})"
    if text.startswith(("/", "~")) or re.match(r"[A-Za-z]:[\\/]", text):
        return Path(text.split(" (")[0]).name
    return text


def _usage(info: Mapping[str, Any], name: str) -> str:
    emotions = list(info.get("emotions", [])) or ["awe", "fear"]
    first, second = emotions[0], emotions[-1]
    if not is_complete(info):
        return ("```python\nfrom uniemo.classifier import EmoClassifier\n\n"
                f'model = EmoClassifier.from_pretrained("{name}/classifier")\n```\n\n'
                f"```bash\npython eval/understanding.py --model {name} --dataset emoset --data-root DATA\n```")
    noun = (list(info.get("transfer_nouns") or []) or list(NEUTRAL_NOUNS))[0]
    return ("```python\nfrom uniemo import UniEmoPipeline\n\n"
            f'pipe = UniEmoPipeline.from_pretrained("{name}")\n'
            'print(pipe.classify("photo.jpg").label)\n'
            f'images = pipe.generate("{first}", num_images=2, seed=0)\n'
            f'images = pipe.transfer("{second}", "{noun}", seed=0)\n'
            f'images = pipe.fuse("{first}", "{second}", weight=0.5)\n```')


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def default_metrics(folder: str | os.PathLike, info: Mapping[str, Any]) -> dict[str, str]:
    """The numbers a card shows when its writer passes none: the headline numbers of the folder's
    ``report.json`` (``eval/tiny_report.py``) and a stage-1 folder's best validation top-1."""
    metrics: dict[str, str] = {}
    if isinstance(info.get("best_val_top1"), (int, float)):
        metrics["validation top-1 (best checkpoint)"] = f"{100 * info['best_val_top1']:.1f} %"
    path = Path(folder) / "report.json"
    try:
        report = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        report = {}
    for section, key, label in _HEADLINE:
        value = (report.get(section) or {}).get(key) if isinstance(report, dict) else None
        if isinstance(value, (int, float)):
            metrics[label] = f"{100 * value:.1f} %"
    return metrics


def kept_card(folder: str | os.PathLike | None) -> dict[str, Any]:
    """What a folder's model card holds of its own, as ``write_manifest`` keyword arguments (``title``,
    ``description``, ``tags``, ``datasets``), so that writing the folder again keeps it; ``{}`` without a card.

    The folder's own text is what lies between the card's two markers; a card written without them (by hand)
    is all its own text after the title."""
    if folder is None or not (Path(folder) / MODEL_CARD).is_file():
        return {}
    raw = (Path(folder) / MODEL_CARD).read_text(encoding="utf-8")
    try:
        card = ModelCard(raw)
        text, data = card.text.strip(), card.data.to_dict()
    except Exception:  # front matter that is not valid YAML: its text is still the folder's own
        text, data = re.sub(r"\A---\n.*?\n---\n", "", raw, flags=re.DOTALL).strip(), {}
    kept: dict[str, Any] = {}
    match = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    if match and match.group(1).strip() not in DERIVED_TITLES:
        kept["title"] = match.group(1).strip()
    if WRITTEN_HERE not in text:  # a card written by hand: all of it but the title is its own
        parts = (text[:match.start()], text[match.end():]) if match else (text,)
        own = "\n\n".join(t.strip() for t in parts if t.strip())
    elif KEPT_START in text and KEPT_END in text:
        own = text.split(KEPT_START, 1)[1].split(KEPT_END, 1)[0].strip()
    else:
        own = ""
    if own:
        kept["description"] = own
    tags = [t for t in data.get("tags") or [] if t not in DERIVED_TAGS]
    if tags:
        kept["tags"] = tags
    if data.get("datasets"):
        kept["datasets"] = [data["datasets"]] if isinstance(data["datasets"], str) else list(data["datasets"])
    return kept
