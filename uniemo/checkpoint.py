"""``save_pretrained`` / ``from_pretrained`` for our own modules: ``config.json`` + ``model.safetensors``.

Only JSON and safetensors are ever read when loading (no pickle). A module opts in by subclassing
``PretrainedMixin`` and naming its config dataclass in ``config_class``; the config alone determines
the architecture, so loading is "build from config, then load the state dict strictly".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file

from uniemo.config import _from_dict, config_to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound="PretrainedMixin")


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """safetensors needs contiguous, unshared tensors: clone shared storage before writing."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr() if v.numel() else id(v)
        if ptr in seen:
            v = v.clone()
        seen[ptr] = k
        out[k] = v
    save_file(out, str(path), metadata=metadata or {"format": "pt"})


class PretrainedMixin:
    """Adds ``save_pretrained(dir)`` and ``from_pretrained(dir)`` to an ``nn.Module``."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, save_directory: str | Path) -> None:
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        cfg = {"_class_name": type(self).__name__, **config_to_dict(self.config)}
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        save_state_dict(self.state_dict(), out / WEIGHTS_NAME)

    @classmethod
    def load_config(cls, directory: str | Path):
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in {str(directory)!r}: not a saved {cls.__name__} folder")
        data = json.loads(path.read_text())
        name = data.pop("_class_name", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}")
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{path} has key(s) {unknown} that this version of {cls.config_class.__name__} does not know; "
                "it was probably written by a newer UniEmo"
            )
        return _from_dict(cls.config_class, data)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, map_location: str = "cpu") -> M:
        config = cls.load_config(directory)
        model = cls(config)
        weights = Path(directory) / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {str(directory)!r}")
        state = load_file(str(weights), device=map_location)
        model.load_state_dict(state, strict=True)
        return model
