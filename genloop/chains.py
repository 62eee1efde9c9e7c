"""Grids of configs: the sweep axes of a raw config, one chain per point, and a chain's identity.

A list given where a scalar is expected (``generator.ddpm.guidance_scale=[1.0,0.1,1e-10]``), or a
list of lists where a list is expected, is a sweep axis; ``seeds: [0, 1, 2]`` is an axis over
``seed``.  ``expand`` turns a raw config into one resolved ``Config`` per point of the grid (one
*chain* each).  A chain's identity (``identity_dict``) is its config in the flat layout of earlier
versions, so run folders made before keep their chains.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from dataclasses import dataclass
from typing import Any

import yaml

from .coerce import _hints, _is_list_type, _is_section
from .config import Config, ConfigError, groups_of
from .groups import groups_by_owner
from .loading import from_dict, get_path, load_components, plugins_of, set_path, to_dict
from .migrate import flat_dict, new_key, setting_key, translate


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
    """The sweep axes in ``raw``: (dotted key, values), in config order (a section's own keys, then its
    groups in the order their keys had in the flat layout, then its subsections)."""
    axes: list[tuple[str, list]] = []

    def walk(cls: type, node: dict, prefix: str) -> None:
        hints = _hints(cls)
        fields = dataclasses.fields(cls)
        for f in [f for f in fields if not _is_section(hints[f.name])]:
            path = f"{prefix}.{f.name}" if prefix else f.name
            tp = hints[f.name]
            value = node.get(f.name)
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
        groups = groups_of(cls)
        for name in groups_by_owner(cls):  # the order of the flat layout: chain ids stay as they were
            if isinstance(node.get(name), dict):
                walk(groups[name][0], node[name], f"{prefix}.{name}")
        for f in [f for f in fields if _is_section(hints[f.name])]:
            if isinstance(node.get(f.name), dict):
                walk(hints[f.name], node[f.name], f"{prefix}.{f.name}" if prefix else f.name)

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
    load_components(plugins_of(raw))
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
