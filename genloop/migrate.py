"""The flat keys of earlier versions: aliases, saved configs, and a chain's identity.

Earlier versions kept every component's options flat in its family's section
(``generator.guidance_scale``, ``generator.width``); now each component's options are
a group of their own (``generator.ddpm.guidance_scale``, ``generator.mlp.width``,
``generator.gpt.width``).  This module maps between the two:

* ``translate`` moves old keys of a YAML source (or of a dict) into their groups,
  resolving each by the components the section selects: ``generator.width`` is
  ``generator.mlp.width`` when ``generator.name`` is ddpm with the mlp network, and
  ``generator.gpt.width`` when it is gpt.  An old key that two selected components of
  different kinds own (a grid over ``generator.name: [ddpm, gpt]``) is ambiguous: one
  line names the new keys.  A complete old section (a run folder's ``config.yaml``
  written by an earlier version) keeps its old meaning: each value goes to every
  component that owns the key.  Every old key is noted once in the log.
* ``flat_dict`` is the inverse: a config in the grouped layout as the flat dict of the
  old one.  Hashes of a chain's identity (its key in a run folder, the shared-model
  key) are taken of it, so they are the same before and after the change, and
  ``setting_key`` names a grid key as before (``generator.guidance_scale``) in chain
  settings and table columns.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Optional, get_type_hints

from .config import ComponentSection, Config, ConfigError, active_names, groups_of, legacy_owners, note_once, old_name


@functools.lru_cache(maxsize=None)
def _sections() -> tuple:
    hints = get_type_hints(Config)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(Config)
                 if isinstance(hints[f.name], type) and issubclass(hints[f.name], ComponentSection))


def component_sections() -> dict[str, type]:
    """Section key -> section class, for the sections whose components have option groups."""
    return dict(_sections())


_ANY = object()


def _section_of(key: str, value: Any = _ANY) -> Optional[tuple[str, type, str]]:
    """(section key, section class, old key) when ``key`` (set to ``value``) is an old flat key of a
    grouped section.  A key that is also a component's name is its group, unless ``value`` is not
    a mapping (an old plugin ``shrink`` with an option ``shrink``)."""
    parts = key.split(".")
    if len(parts) != 2:
        return None
    cls = component_sections().get(parts[0])
    if cls is None or parts[1] in {f.name for f in dataclasses.fields(cls)}:
        return None
    if parts[1] in groups_of(cls) and (value is _ANY or isinstance(value, dict)):
        return None
    return (parts[0], cls, parts[1]) if parts[1] in legacy_owners(cls) else None


def _slot_of(cls: type, comp: str) -> str:
    return groups_of(cls)[comp][1]


def _complete_old_section(cls: type, node: dict) -> bool:
    """A whole section in the old flat layout (as earlier versions wrote it into config.yaml)."""
    old = legacy_owners(cls)
    return bool(old) and all(k in node for k in old) and not any(g in node for g in groups_of(cls))


def targets(section: str, cls: type, key: str, node: dict, saved: bool = False) -> list[tuple[str, str]]:
    """The (component, field) pairs the old key ``section.key`` sets, given the section's values
    ``node`` (what it selects).  ``saved``: a complete old section, every owner not selected
    keeps the old shared value too."""
    owners = legacy_owners(cls)[key]
    active = active_names(cls, node)
    used = [(c, f) for c, f in owners if c in active]
    if saved:
        return used + [o for o in owners if o not in used]
    if not used:
        return owners  # not used by the selected components: every owner keeps it, as before
    if len({_slot_of(cls, c) for c, _ in used}) > 1:
        new = " or ".join(f"{section}.{c}.{f}" for c, f in used)
        raise ConfigError(f"{section}.{key}: ambiguous here ({', '.join(c for c, _ in used)} each have it); "
                          f"write {new}")
    return used


def translate(raw: Any, context: Optional[dict] = None) -> Any:
    """``raw`` (a config mapping, possibly partial) with the old flat keys of grouped sections
    moved into their components' groups.  ``context``: the config ``raw`` is merged into (what
    the sections select when ``raw`` does not say)."""
    if not isinstance(raw, dict):
        return raw
    out = copy.deepcopy(raw)
    for section, cls in component_sections().items():
        node = out.get(section)
        if not isinstance(node, dict):
            continue
        base = (context or {}).get(section)
        view = {**(base if isinstance(base, dict) else {}), **node}
        saved = _complete_old_section(cls, node)
        old = [k for k in node if _section_of(f"{section}.{k}", node[k]) is not None]
        if old and saved:
            note_once(f"saved {section}", f"{section}: a config in the flat layout of earlier versions (a run folder's "
                      f"config.yaml); its keys are read as their new keys ({section}.<component>.<key>)")
        for key in old:
            value = node.pop(key)
            for comp, fname in targets(section, cls, key, view, saved):
                group = node.setdefault(comp, {})
                if isinstance(group, dict) and (not saved or fname not in group):  # a saved section's new keys win
                    group[fname] = copy.deepcopy(value)
                if not saved:
                    note_once(f"alias {section}.{key}->{comp}", f"{section}.{key} is an old key; it sets "
                              f"{section}.{comp}.{fname} here (write that instead)")
        _translate_overrides(out, section)
    return out


def _translate_overrides(out: dict, section: str) -> None:
    """Fields that hold overrides of ``section`` (``loop.ecosystem.lineages``, flat ``loop.lineages``) get
    their old keys moved too."""
    for sec_name, paths in _override_fields(section).items():
        node = out.get(sec_name)
        if not isinstance(node, dict):
            continue
        for path in paths:
            holder = node.get(path[0]) if len(path) == 2 else node
            if not isinstance(holder, dict):
                continue
            items = holder.get(path[-1])
            if isinstance(items, list) and all(isinstance(o, dict) for o in items):
                merged = out.get(section) if isinstance(out.get(section), dict) else {}
                holder[path[-1]] = [translate({section: o}, {section: merged}).get(section, {}) for o in items]


def _override_paths(section: str) -> tuple:
    """(section key, path) of every field holding overrides of ``section`` (``opt(..., overrides=...)``):
    ``("loop", ("ecosystem", "lineages"))`` in a group, and its flat key ``("loop", ("lineages",))``."""
    out = []
    hints = get_type_hints(Config)
    for f in dataclasses.fields(Config):
        tp = hints[f.name]
        if not dataclasses.is_dataclass(tp):
            continue
        out += [(f.name, (g.name,)) for g in dataclasses.fields(tp) if g.metadata.get("overrides") == section]
        for comp, (ocls, _) in groups_of(tp).items():
            for g in dataclasses.fields(ocls):
                if g.metadata.get("overrides") == section:
                    out += [(f.name, (comp, g.name)), (f.name, (old_name(g),))]
    return tuple(out)


def _override_fields(section: str) -> dict[str, list[tuple]]:
    """Section key -> the paths of its fields that hold overrides of ``section``."""
    out: dict[str, list[tuple]] = {}
    for sec_name, path in _override_paths(section):
        out.setdefault(sec_name, []).append(path)
    return out


def alias_targets(key: str, context: dict, value: Any = _ANY) -> list[str]:
    """The new dotted keys an old dotted ``key`` (``generator.width``) set to ``value`` sets, given
    the config ``context`` it is applied to; [] when ``key`` is not an old key."""
    found = _section_of(key, value)
    if found is None:
        return []
    section, cls, old = found
    node = context.get(section) if isinstance(context.get(section), dict) else {}
    out = []
    for comp, fname in targets(section, cls, old, node):
        out.append(f"{section}.{comp}.{fname}")
        note_once(f"alias {section}.{old}->{comp}", f"{key} is an old key; it sets {section}.{comp}.{fname} here "
                  "(write that instead)")
    return out


def is_alias(key: str, value: Any = _ANY) -> bool:
    return _section_of(key, value) is not None


def _flat_section(cls: type, node: dict) -> dict:
    """A grouped section (resolved or raw) as the flat section of the old layout."""
    fields = {f.name for f in dataclasses.fields(cls)}
    groups = groups_of(cls)
    out = {k: copy.deepcopy(v) for k, v in node.items() if k in fields}
    active = active_names(cls, node)
    rank = {c: i for i, c in enumerate(active)}
    for key, owners in legacy_owners(cls).items():
        comp, fname = min(owners, key=lambda o: (rank.get(o[0], len(rank)), owners.index(o)))
        group = node.get(comp)
        if isinstance(group, dict) and fname in group:
            out[key] = copy.deepcopy(group[fname])
        else:
            f = {g.name: g for g in dataclasses.fields(groups[comp][0])}[fname]
            out[key] = copy.deepcopy(f.default) if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def flat_dict(raw: dict) -> dict:
    """A config mapping of the grouped layout (``to_dict`` of a config, or a raw config) as the
    flat mapping earlier versions had: what a chain's identity is hashed from."""
    out = copy.deepcopy(raw)
    sections = component_sections()
    for section, cls in sections.items():
        node = out.get(section)
        if isinstance(node, dict):
            out[section] = _flat_section(cls, node)
    for section, cls in sections.items():  # overrides of a section, at their flat keys now
        for sec_name, path in _override_paths(section):
            sub = out.get(sec_name)
            items = sub.get(path[0]) if isinstance(sub, dict) and len(path) == 1 else None
            if isinstance(items, list):
                sub[path[0]] = [_flat_override(cls, o) for o in items]
    return out


def _flat_override(cls: type, over: Any) -> Any:
    """One override mapping (``loop.lineages[i]``) with its groups flattened to old keys."""
    if not isinstance(over, dict):
        return over
    groups = groups_of(cls)
    out = {k: v for k, v in over.items() if k not in groups or not isinstance(v, dict)}
    for comp, values in over.items():
        if comp in groups and isinstance(values, dict):
            names = {f.name: old_name(f) for f in dataclasses.fields(groups[comp][0])}
            out.update({names.get(k, k): v for k, v in values.items()})
    return out


def setting_key(key: str, keys: list[str]) -> str:
    """The name of grid key ``key`` in chain settings and table columns: ``generator.guidance_scale``
    for ``generator.ddpm.guidance_scale`` (the section and the option), unless another grid key
    of ``keys`` would get the same name."""
    def short(k: str) -> str:
        parts = k.split(".")
        cls = component_sections().get(parts[0])
        if len(parts) == 3 and cls is not None and parts[1] in groups_of(cls):
            f = {g.name: g for g in dataclasses.fields(groups_of(cls)[parts[1]][0])}.get(parts[2])
            if f is not None:
                return f"{parts[0]}.{old_name(f)}"
        return k

    name = short(key)
    return key if sum(short(k) == name for k in keys) > 1 else name


def new_key(key: str, raw: dict) -> str:
    """An old flat key as the new key it means in ``raw`` (for messages); other keys unchanged."""
    found = _section_of(key)
    if found is None:
        return key
    section, cls, old = found
    node = raw.get(section) if isinstance(raw.get(section), dict) else {}
    comp, fname = targets(section, cls, old, node, saved=True)[0]
    return f"{section}.{comp}.{fname}"
