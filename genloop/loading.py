"""Loading a configuration: YAML files, dotted overrides, merge, building the typed ``Config``.

Loading is strict: an unknown key, a wrong type or an out-of-range value
raises ``ConfigError`` naming the key, the value and what is allowed, before
any work starts.  The built-ins are registered first by the entry points
(``genloop.load_builtins``); every function here then imports the ``genloop.plugins``
entry points and the config's ``plugins``, so a component's own keys
(``generator.gmm.components``) and names are known before anything is resolved.

Types and ranges of values are checked in ``genloop.coerce``, the built config in
``genloop.validation`` (names, each component's options, cross-field checks); grids of
configs (``expand``) and a chain's identity are in ``genloop.chains``.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml

from .coerce import _coerce, _check_range, _hints, _is_list_type, _is_section, _type_name  # noqa: F401
from .config import ComponentSection, Config, ConfigError, groups_of
from .migrate import alias_targets, is_alias, translate
from .plugins import load as load_plugins
from .registry import require_builtins
from .validation import (check_components, memory_bytes, register_name_check, register_validator,  # noqa: F401
                         validate)


# --------------------------------------------------------------------------- components


def load_components(plugins: Optional[Iterable[str]] = None) -> None:
    """Import the installed ``genloop.plugins`` entry points and the modules named in ``plugins``
    (each once), after the built-ins, which the entry points register first
    (``genloop.load_builtins``); before that, a ``ConfigError`` says so."""
    require_builtins()
    load_plugins(plugins)


def plugins_of(node: Any) -> list:
    value = node.get("plugins") if isinstance(node, dict) else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"plugins: {value!r} must be a list of module names (e.g. [mypkg.mymodel])")
    return list(value)


# --------------------------------------------------------------------------- build / dump


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {raw!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    groups = groups_of(cls)
    unknown = [k for k in raw if k not in fields and k not in groups]
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key (known keys here: {', '.join([*fields, *groups])})")
    kwargs = {}
    for name, f in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            continue
        tp = hints[name]
        if _is_section(tp):
            kwargs[name] = _build(tp, raw[name], path)
        else:
            value = _coerce(path, raw[name], tp)
            if isinstance(value, list):
                for i, v in enumerate(value):
                    _check_range(f"{path}[{i}]", v, f.metadata)
            else:
                _check_range(path, value, f.metadata)
            kwargs[name] = value
    obj = cls(**kwargs)
    for name, (ocls, _) in groups.items():
        if name in raw:
            obj.set_group(name, _build(ocls, raw[name], f"{prefix}.{name}" if prefix else name))
    return obj


def with_overrides(section: Any, overrides: dict, prefix: str) -> Any:
    """A copy of ``section`` with ``overrides`` (a mapping of its keys, old flat keys allowed)
    applied and checked; errors name ``prefix.<key>``."""
    key = getattr(type(section), "key", "")
    base = to_dict(section)
    over = translate({key: dict(overrides)}, {key: base})[key] if key else dict(overrides)
    merged = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return _build(type(section), merged, prefix)


def from_dict(raw: dict) -> Config:
    """Build and check a resolved ``Config`` (no grid axes) from a nested dict (old flat keys of a
    component's options are read as their new keys, see ``translate``)."""
    load_components(plugins_of(raw))
    cfg = _build(Config, translate(raw), "")
    validate(cfg)
    return cfg


def to_dict(cfg: Any) -> dict:
    """A config (or section, or options object) as a nested dict: fields, then each component's group."""
    if not dataclasses.is_dataclass(cfg):
        return copy.deepcopy(cfg)
    out = {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, ComponentSection):
        out.update({name: to_dict(g) for name, g in cfg.groups().items()})
    return out


def dump_yaml(cfg: Any) -> str:
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# --------------------------------------------------------------------------- raw dicts, overrides, grids


def defaults() -> dict:
    load_components()
    return to_dict(Config())


def deep_merge(base: dict, update: dict, prefix: str = "") -> dict:
    """Merge ``update`` into a copy of ``base``; keys must already exist in ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in out:
            raise ConfigError(f"{path}: unknown key (known keys here: {', '.join(out)})")
        if isinstance(out[key], dict) and _is_section_path(path):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a mapping of keys, got {value!r}")
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _field_at(path: str) -> tuple[Any, dict]:
    """Type and metadata of the field at a dotted ``path``."""
    load_components()
    cls: Any = Config
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        groups = groups_of(cls)
        if part in groups and part not in fields:
            if i == len(parts) - 1:
                return groups[part][0], {}
            cls = groups[part][0]
            continue
        if part not in fields:
            where = ".".join(parts[:i]) or "config"
            raise ConfigError(f"{path}: unknown key (known keys in {where}: {', '.join([*fields, *groups])})")
        tp = _hints(cls)[part]
        if i == len(parts) - 1:
            return tp, dict(fields[part].metadata)
        if not _is_section(tp):
            raise ConfigError(f"{path}: {'.'.join(parts[:i + 1])} is not a section")
        cls = tp
    raise AssertionError  # pragma: no cover


def _is_section_path(path: str) -> bool:
    return _is_section(_field_at(path)[0])


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", parsed value)``; values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"{text!r}: an override must look like key=value (e.g. loop.generations=3)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"{text!r}: missing key before '='")
    if not is_alias(key):
        _field_at(key)  # unknown keys fail here, with the list of known ones
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot read value {raw!r} ({exc.__class__.__name__})") from None
    return key, value


def set_path(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_path(raw: dict, key: str) -> Any:
    node = raw
    for part in key.split("."):
        node = node[part]
    return node


def read_yaml(path: Union[str, Path]) -> dict:
    p = Path(path)
    if not p.is_file():
        hint = ""
        if p.suffix == "" and len(p.parts) == 1 and (Path(__file__).parent / "presets" / f"{p.name}.yaml").is_file():
            hint = f"; for the shipped preset use preset={p.name!r} (genloop.run / genloop.load_config) or -p {p.name}"
        raise ConfigError(f"config file {str(p)!r} does not exist{hint}")
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (a YAML config in UTF-8 is expected)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    return data


def load_raw(files: Union[None, str, Path, list] = None, overrides: Optional[list[str]] = None,
             base: Optional[dict] = None, plugins: Optional[list[str]] = None) -> dict:
    """Defaults <- each YAML file (or dict) in order <- ``key=value`` overrides.

    The ``plugins`` of every file, of a ``plugins=[...]`` override and of the argument
    are imported first (their components' keys are then known) and all kept, in order,
    in the result's ``plugins``."""
    if files is None:
        files = []
    elif isinstance(files, (str, Path, dict)):
        files = [files]
    sources = [f if isinstance(f, dict) else read_yaml(f) for f in files]
    wanted = plugins_of(base)
    for src in sources:
        wanted += plugins_of(src)
    for text in overrides or []:
        if text.partition("=")[0].strip() == "plugins":
            wanted += plugins_of({"plugins": parse_override(text)[1]})
    wanted += list(plugins or [])
    wanted = list(dict.fromkeys(wanted))
    load_components(wanted)
    raw = defaults() if base is None else translate(copy.deepcopy(base))
    for src in sources:
        raw = deep_merge(raw, translate(src, raw))
    parsed = [parse_override(text) for text in overrides or []]
    context = copy.deepcopy(raw)  # old keys resolve by the components the overrides select
    for key, value in parsed:
        if not is_alias(key, value):
            set_path(context, key, value)
    keys = []
    for key, value in parsed:
        for target in alias_targets(key, context, value) or [key]:
            set_path(raw, target, value)
            keys.append(target)
    raw["plugins"] = wanted
    _check_shadowed(raw, keys)
    # Re-merge to validate the structure of overridden sections too.
    return deep_merge(defaults(), raw)


# (key, the key that wins over it, when it does): an override of the first has no effect then.
SHADOWED = [("train.steps", "train.epochs", lambda v: v is not None,
             "train.epochs={other} is set and wins over it; add train.epochs=null to train for train.steps")]


def _check_shadowed(raw: dict, keys: list[str]) -> None:
    """Refuse an override that another key makes ineffective (``SHADOWED``), naming both and the fix."""
    for key, other, wins, why in SHADOWED:
        if key in keys:
            try:
                value = get_path(raw, other)
            except (KeyError, TypeError):
                continue
            if wins(value):
                raise ConfigError(f"{key}={get_path(raw, key)!r} has no effect: {why.format(other=value)}")


# Grids and a chain's identity moved to genloop.chains; these names still import from here.
_MOVED = ("grid_axes", "Chain", "format_value", "CHAIN_ID_LENGTH", "expand", "NON_IDENTITY_SECTIONS",
          "identity_diff", "identity_dict", "diff")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        module = "genloop.chains"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'genloop.loading' has no attribute {name!r}")
