"""Typed configs: dataclass defaults <- preset YAML file <- ``key=value`` overrides.

``parse_config(Config, argv)`` returns a real dataclass instance. Unknown keys are rejected with a
message naming the valid ones; values are converted to the field's declared type.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import yaml

T = TypeVar("T")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only true/false (any case) are booleans.

    PyYAML follows YAML 1.1, where ``no``, ``off``, ``yes`` and ``on`` are booleans too, so
    ``mixed_precision=no`` would arrive as ``False``; here it stays the string ``"no"``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML text with ``_Yaml12Loader`` (``no`` and ``off`` stay strings)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type ``tp`` (or raise ValueError naming ``where``)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
        raise ValueError(f"{where}: cannot convert {value!r} to {tp} ({'; '.join(errors)})")
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not allowed; choose one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where + ".")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = load_yaml(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], where) for v in value)
        if origin is tuple and args:
            if len(args) != len(value):
                raise ValueError(f"{where}: expected {len(args)} values, got {list(value)}")
            return tuple(_convert(v, a, where) for v, a in zip(value, args))
        inner = args[0] if args else Any
        out = [_convert(v, inner, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build ``cls`` from a (possibly partial) nested dict, rejecting unknown keys."""
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(types_))}"
        )
    kwargs = {k: _convert(v, types_[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def merge_into(obj: T, data: dict, prefix: str = "") -> T:
    """Return a copy of dataclass ``obj`` with the nested dict ``data`` applied on top."""
    types_ = _field_types(type(obj))
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(types_))}"
        )
    changes = {}
    for key, value in data.items():
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge_into(current, value, prefix + key + ".")
        else:
            changes[key] = _convert(value, types_[key], prefix + key)
    return dataclasses.replace(obj, **changes)


def overrides_to_dict(overrides: list[str]) -> dict:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-4)")
        key, raw = item.split("=", 1)
        try:
            value = load_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return out


def merge_dicts(base: dict, top: dict) -> dict:
    """Nested dicts of overrides merged, ``top`` winning (``{"model": {"a": 1}}`` + ``{"model": {"b": 2}}`` ->
    ``{"model": {"a": 1, "b": 2}}``)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merge_dicts(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-able dict of a dataclass config (tuples become lists)."""

    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_preset(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    data = load_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at its top level")
    return data


def build_config(
    config_cls: type[T],
    files: Sequence[str | Path] = (),
    overrides: dict | None = None,
    checks: Sequence[Callable[[T], None]] = (),
) -> T:
    """defaults <- each preset file in ``files`` <- the nested dict ``overrides``, then ``validate()`` and
    ``checks``: the config a command line would give, built in code (``parse_config`` uses it; so does a
    recipe that runs another stage, such as the UniEmo-Tiny builder).

    Raises:
        ValueError: an unknown key, a value of the wrong type, a failed validation or check.
        FileNotFoundError: from a check of the paths.
    """
    cfg = config_cls()
    for path in files:
        cfg = merge_into(cfg, load_preset(path))
    cfg = merge_into(cfg, overrides or {})
    if hasattr(cfg, "validate"):
        cfg.validate()
    for check in checks:
        check(cfg)
    return cfg


def _example_override(config_cls: type) -> str:
    """A ``key=value`` this config really accepts (its first nested field and default), for the help text."""
    default = config_cls()
    for f in dataclasses.fields(config_cls):
        inner = getattr(default, f.name)
        if dataclasses.is_dataclass(inner):
            first = dataclasses.fields(inner)[0]
            return f"{f.name}.{first.name}={getattr(inner, first.name)}"
    first = dataclasses.fields(config_cls)[0]
    return f"{first.name}={getattr(default, first.name)}"


def parse_config(
    config_cls: type[T],
    argv: list[str] | None = None,
    presets: dict[str, Path] | None = None,
    description: str | None = None,
    checks: Sequence[Callable[[T], None]] = (),
    exit_on_error: bool | None = None,
) -> T:
    """defaults <- ``--config FILE`` (or ``--preset NAME``) <- ``key=value`` overrides, then ``validate()`` and
    ``checks`` (e.g. that the paths exist; they run before any model loads).

    Args:
        config_cls: the script's top-level ``Config`` dataclass.
        argv: command-line words (``None``: ``sys.argv[1:]``).
        presets: named preset files (``--preset tiny``); an unknown name is an error.
        checks: functions of the parsed config that raise ``ValueError`` / ``FileNotFoundError``.
        exit_on_error: print the usage and the message and exit with status 2 (argparse's convention) instead
            of raising. Default: True on the real command line (``argv is None``), False when a caller passes
            ``argv`` (tests, recipes), which gets the exception.
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Overrides: key=value, dotted for nested fields, e.g. {_example_override(config_cls)}.\n"
        f"Top-level keys: {', '.join(f.name for f in dataclasses.fields(config_cls))}.",
    )
    parser.add_argument("--config", help="a YAML preset file holding overrides of the defaults")
    if presets:
        parser.add_argument("--preset", help=f"a named preset: {', '.join(sorted(presets))}")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    try:
        preset = getattr(args, "preset", None)
        if preset is not None and preset not in presets:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(presets))}")
        files = [presets[preset]] if preset is not None else []
        cfg = build_config(config_cls, [*files, *([args.config] if args.config else [])],
                           overrides_to_dict(args.overrides), checks)
    except (ValueError, FileNotFoundError) as error:
        if exit_on_error if exit_on_error is not None else argv is None:
            parser.error(str(error))  # usage + message, exit status 2
        raise
    return cfg
