"""Loading a configuration: YAML files, dotted overrides, coercion, merge, grids.

Loading is strict: an unknown key, a wrong type or an out-of-range value
raises ``ConfigError`` naming the key, the value and what is allowed, before
any work starts.  The built-ins are registered first by the entry points
(``genloop.load_builtins``); every function here then imports the ``genloop.plugins``
entry points and the config's ``plugins``, so a component's own keys
(``generator.components``) and names are known before anything is resolved.

Grids: a list given where a scalar is expected (``generator.ddpm.guidance_scale=
[1.0,0.1,1e-10]``), or a list of lists where a list is expected, is a sweep
axis; ``seeds: [0, 1, 2]`` is an axis over ``seed``.  ``expand`` turns a raw
config into one resolved ``Config`` per point of the grid (one *chain* each).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml

from .config import ComponentSection, Config, ConfigError, groups_of
from .migrate import alias_targets, flat_dict, is_alias, new_key, setting_key, translate
from .plugins import load as load_plugins
from .registry import require_builtins


# --------------------------------------------------------------------------- components


def load_components(plugins: Optional[Iterable[str]] = None) -> None:
    """Import the installed ``genloop.plugins`` entry points and the modules named in ``plugins``
    (each once), after the built-ins, which the entry points register first
    (``genloop.load_builtins``); before that, a ``ConfigError`` says so."""
    require_builtins()
    load_plugins(plugins)


def _plugins_of(node: Any) -> list:
    value = node.get("plugins") if isinstance(node, dict) else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"plugins: {value!r} must be a list of module names (e.g. [mypkg.mymodel])")
    return list(value)


# --------------------------------------------------------------------------- typing helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_list_type(tp: Any) -> bool:
    return typing.get_origin(_unwrap_optional(tp)[0]) is list


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is list:
        name = f"list of {_type_name(typing.get_args(inner)[0])}"
    elif typing.get_origin(inner) is dict:
        name = "mapping"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against type ``tp``; return it converted (int -> float etc.)."""
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: null is not allowed (expected {_type_name(tp)})")
    origin = typing.get_origin(inner)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: {value!r} is not a list (expected {_type_name(tp)})")
        (elem,) = typing.get_args(inner)
        return [_coerce(f"{path}[{i}]", v, elem) for i, v in enumerate(value)]
    if origin is dict or inner is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {value!r} is not a mapping")
        return dict(value)
    if inner is Any:
        return value
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: {value!r} is not a boolean (use true or false)")
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: {value!r} is not an integer")
        return value
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not a number")
        if isinstance(value, (int, float)):
            return float(value)
        # YAML 1.1 reads 1e-10 as a string; accept numeric-looking strings only.
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            return float(value)
        raise ConfigError(f"{path}: {value!r} is not a number")
    if inner is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: {value!r} is not a string")
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover


def _check_range(path: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not allowed (choose one of: {', '.join(map(str, choices))})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{path}: NaN is not allowed")
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(f"{path}: {value!r} is not allowed (give a finite number)")
        for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                raise ConfigError(f"{path}: {value!r} is out of range (must be {word} {bound})")


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
    load_components(_plugins_of(raw))
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


def validate(cfg: Config) -> None:
    """Check a built config in three steps: every registry name it uses exists (the name checks,
    ``register_name_check``); then each component in use checks its own options (``check()``)
    and their relation to the shared keys of other sections (``check_with(config)``); then the
    remaining cross-field checks (``register_validator``)."""
    for hook in _NAME_CHECKS:
        hook(cfg)
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if isinstance(section, ComponentSection):
            check_components(section, cfg)
    if cfg.decode.prompt_tokens > cfg.data.block_size:
        raise ConfigError(f"decode.prompt_tokens: {cfg.decode.prompt_tokens} is more than data.block_size "
                          f"({cfg.data.block_size}); a sample is one block, its first prompt_tokens real")
    _check_memory(cfg)
    for hook in _VALIDATORS:
        hook(cfg)


# Bytes per item of the synthetic sources whose size data.count sets (as they are drawn).
_ITEM_BYTES = {"gaussian": lambda d: 8 * max(1, getattr(d, "dim", 1) or 1),
               "shapes": lambda d: 3 * (d.image_size or 32) ** 2 * 4,
               "zipf-markov": lambda d: 8 * d.block_size}


def memory_bytes() -> Optional[int]:
    """This machine's physical memory in bytes (None when it cannot be told)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: Config) -> None:
    """Refuse sizes that cannot fit in memory, before any work (``data.count`` of a synthetic source)."""
    per = _ITEM_BYTES.get(cfg.data.name)
    total = memory_bytes()
    if per is None or total is None:
        return
    need = cfg.data.count * per(cfg.data)
    if need > total:
        raise ConfigError(f"data.count: {cfg.data.count} items of {cfg.data.name} need about {need / 2**30:,.0f} GiB, "
                          f"more than this machine's {total / 2**30:,.0f} GiB of memory; lower data.count")


def check_components(section: ComponentSection, cfg: Config) -> None:
    """Each component ``section`` uses runs its options' ``check()`` and ``check_with(cfg)``."""
    for name in section.active():
        opts = section.group(name) if name in groups_of(type(section)) else None
        if opts is None:
            continue
        if callable(getattr(opts, "check", None)):
            opts.check()
        if callable(getattr(opts, "check_with", None)):
            opts.check_with(cfg)


_VALIDATORS: list = []
_NAME_CHECKS: list = []


def register_validator(fn):
    """Let a layer above add a cross-field check without an import cycle (run after the name
    checks and the components' own checks)."""
    _VALIDATORS.append(fn)
    return fn


def register_name_check(fn):
    """Add a check that the registry names a config uses exist; name checks run first, as a
    step of their own, so that the components' checks can rely on their names."""
    _NAME_CHECKS.append(fn)
    return fn


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
    wanted = _plugins_of(base)
    for src in sources:
        wanted += _plugins_of(src)
    for text in overrides or []:
        if text.partition("=")[0].strip() == "plugins":
            wanted += _plugins_of({"plugins": parse_override(text)[1]})
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


def _check_distinct(key: str, values: list) -> None:
    seen: dict = {}
    for v in values:
        k = yaml.safe_dump(v)
        if k in seen:
            what = "the same chain twice (a zero-width interval over seeds)" if key == "seed" else "the same chains twice"
            raise ConfigError(f"{'seeds' if key == 'seed' else key}: {v!r} is listed twice in {values!r}, which would "
                              f"run {what}; list each value once")
        seen[k] = v


def grid_axes(raw: dict) -> list[tuple[str, list]]:
    """The sweep axes in ``raw``: (dotted key, values), in config order."""
    axes: list[tuple[str, list]] = []

    def walk(cls: type, node: dict, prefix: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            path = f"{prefix}.{f.name}" if prefix else f.name
            tp = hints[f.name]
            value = node.get(f.name)
            if _is_section(tp):
                if isinstance(value, dict):
                    walk(tp, value, path)
                continue
            if path == "plugins" and isinstance(value, list) and any(isinstance(v, list) for v in value):
                raise ConfigError(f"plugins: {value!r} is a list of modules, not a grid axis")
            if path == "tracking" and isinstance(value, list) and any(isinstance(v, list) for v in value):
                raise ConfigError(f"tracking: {value!r} is a list of trackers, not a grid axis")
            if path.startswith("sweep.") and isinstance(value, list):
                raise ConfigError(f"{path}: {value!r} is a sweep option, not a grid axis (give one value)")
            if path == "seeds":
                continue
            if isinstance(value, list):
                if _is_list_type(tp):
                    if value and all(isinstance(v, list) for v in value):
                        axes.append((path, value))
                else:
                    axes.append((path, value))
        for name, (ocls, _) in groups_of(cls).items():
            if isinstance(node.get(name), dict):
                walk(ocls, node[name], f"{prefix}.{name}")

    walk(Config, raw, "")
    seeds = raw.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise ConfigError(f"seeds: {seeds!r} must be a non-empty list of integers")
        axes.append(("seed", list(seeds)))
    for key, values in axes:
        if not values:
            raise ConfigError(f"{key}: an empty list gives no chain to run")
        _check_distinct(key, values)
    return axes


@dataclass
class Chain:
    """One point of the grid: a resolved config and the settings that vary."""

    id: str
    config: Config
    varied: dict[str, Any]


def _short(key: str) -> str:
    return key.split(".")[-1]


def format_value(value: Any) -> str:
    """A setting as it appears in chain ids and labels: ``1e-10``, ``1-2-2`` for lists."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(format_value(v) for v in value)
    return str(value)


# Chain ids are cut to this many characters (they name folders: long grid values must not
# exceed the file system's name length).
CHAIN_ID_LENGTH = 100


def expand(raw: dict) -> list[Chain]:
    """Expand grid axes into chains, each with a checked, resolved ``Config``."""
    load_components(_plugins_of(raw))
    raw = translate(raw)
    axes = grid_axes(raw)
    chains = []
    keys = [k for k, _ in axes]
    for i, combo in enumerate(itertools.product(*[v for _, v in axes])):
        point = copy.deepcopy(raw)
        point["seeds"] = None
        varied = {}
        for key, value in zip(keys, combo):
            set_path(point, key, value)
            varied[key] = value
        cfg = from_dict(point)
        varied = {setting_key(k, keys): get_path(to_dict(cfg), k) for k in keys}
        label = "_".join(f"{_short(k)}={format_value(v)}" for k, v in varied.items())
        cid = f"c{i:02d}" + (f"_{label}" if label else "")
        cid = re.sub(r"[^A-Za-z0-9_.=+-]", "", cid)[:CHAIN_ID_LENGTH]  # unique by its c<N> prefix
        chains.append(Chain(id=cid, config=cfg, varied=varied))
    return chains


# Sections (and the plugins and tracking keys) that say how a run is stored, placed, followed and which modules
# register components, not what it computes: a run folder may be resumed with other
# values (see Experiment.prepare).
NON_IDENTITY_SECTIONS = ("store", "sweep", "plugins", "tracking")


def identity_diff(a: dict, b: dict) -> list[str]:
    """``diff`` of the configs' identities (``flat_dict``: the same for a config in the old flat
    layout and in the grouped one) without the keys of ``NON_IDENTITY_SECTIONS`` (they change
    no number)."""
    load_components()
    b = translate(b)
    return [new_key(k, b) for k in diff(flat_dict(translate(a)), flat_dict(b))
            if k.split(".")[0] not in NON_IDENTITY_SECTIONS]


def identity_dict(cfg: Config) -> dict:
    """What a chain's identity is hashed from: ``to_dict(cfg)`` in the flat layout of earlier
    versions (``genloop.migrate.flat_dict``), so that hashes do not change with the layout."""
    return flat_dict(to_dict(cfg))


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two raw configs."""
    keys = []
    for k in sorted(set(a) | set(b)):
        path = f"{prefix}.{k}" if prefix else k
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += diff(va, vb, path)
        elif va != vb:
            keys.append(path)
    return keys


