"""Config fields, and each component's options as a group of its own.

``opt`` declares a config field with its help text and its allowed values; the config
reference (``docs/reference.md``, ``genloop config --reference``) is generated from them.

A component's own keys live next to its code, in a small options dataclass of ``opt``
fields it registers with itself (``@GENERATORS.register("gmm", options=GMMOptions)``,
``@DATASETS.register("gaussian", options=GaussianOptions)``).  In its family's section (a
``ComponentSection``: ``data``, ``generator``, ``sampler``, ``loop``, ``metrics``) those
options are the group ``<section>.<component>`` (``generator.gmm.components``,
``data.gaussian.dim``, ``metrics.kid.subset_size``), built from the dataclass and handed to
the component; the dataclass may check itself (``check()``, ``check_with(config)``).  Options
read by several components of a family are a shared group of their own
(``add_shared_group``: ``loop.schedule.*``, ``metrics.onset.*``), always in use.

Each field remembers its key in the flat layout of earlier versions (``old_name``:
``data.dim`` for ``data.gaussian.dim``), so old keys are read as aliases (``genloop.migrate``).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import field
from typing import Any, Optional


class ConfigError(ValueError):
    """A bad key or value in a configuration; the message names it and the fix."""


def opt(default: Any, help: str, *, choices: Optional[tuple] = None, ge: Optional[float] = None,
        le: Optional[float] = None, gt: Optional[float] = None, lt: Optional[float] = None,
        old: Optional[str] = None, overrides: Optional[str] = None) -> Any:
    """A config field with its help text and allowed range.

    ``old``: the key's name in the flat layout of earlier versions, when it differs from the
    field's name (``data.gaussian.mean`` was ``data.gaussian_mean``; ``generator.ddpm.guidance_scale``
    was ``generator.guidance_scale``: same name, no ``old`` needed).  ``overrides``: the field
    holds overrides of that section (``loop.ecosystem.lineages`` overrides ``generator`` keys)."""
    meta = {"help": help, "choices": choices, "ge": ge, "le": le, "gt": gt, "lt": lt}
    if old is not None:
        meta["old"] = old
    if overrides is not None:
        meta["overrides"] = overrides
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help, "section": True})


log = logging.getLogger(__name__)

# section class -> group name -> (its options dataclass, the slot field that names it; None: a shared group)
_GROUPS: dict[type, dict[str, tuple[type, Optional[str]]]] = {}
_OWNERS: dict[tuple[type, str], str] = {}  # (section class, group) -> the owner named in messages
_NOTED: set = set()


def note_once(key: str, text: str) -> None:
    """Log ``text`` (a deprecation note) once per ``key`` in this process."""
    if key not in _NOTED:
        _NOTED.add(key)
        log.warning("%s", text)


def old_name(f: dataclasses.Field) -> str:
    """The flat key an option had before options were grouped by component (its own name unless
    ``opt(..., old=...)`` says otherwise)."""
    return f.metadata.get("old") or f.name


def add_group(section_cls: type, slot: Optional[str], name: str, options_cls: type, owner: str) -> None:
    """Register ``options_cls`` as the options of component ``name``, named by the field ``slot``
    of ``section_cls`` (None: a shared group, always in use): its keys are written
    ``<section>.<name>.<key>``."""
    if not dataclasses.is_dataclass(options_cls):
        raise TypeError(f"{owner}: options must be a dataclass of opt(...) fields, got {options_cls!r}")
    if not issubclass(section_cls, ComponentSection):
        raise TypeError(f"{owner}: {section_cls.__name__} has no option groups")
    fields = {f.name for f in dataclasses.fields(section_cls)}
    groups = _GROUPS.setdefault(section_cls, {})
    if name in fields or name in groups:
        raise ValueError(f"{owner}: {name!r} is already a key of {section_cls.__name__}; register it under another name")
    groups[name] = (options_cls, slot)
    _OWNERS[(section_cls, name)] = owner


def add_shared_group(section_cls: type, name: str, options_cls: type, owner: str) -> None:
    """Options read by several components of a family (``loop.schedule.*``), as the group ``name``."""
    add_group(section_cls, None, name, options_cls, owner)


def as_kwargs(options: Any) -> dict:
    """An options object as keyword arguments (field name -> value); {} for None."""
    return {} if options is None else {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def groups_of(section_cls: type) -> dict[str, tuple[type, Optional[str]]]:
    """Group name -> (options dataclass, slot) registered for ``section_cls``, sorted by name."""
    return dict(sorted(_GROUPS.get(section_cls, {}).items()))


def groups_by_owner(section_cls: type) -> list[str]:
    """The groups of ``section_cls`` in the order of their owners' names (``dataset 'gaussian'``,
    ``interaction model 'verify'``, ``synthetic-fraction schedule``): the order their keys had in
    the flat layout, which grid axes and chain ids keep."""
    return sorted(groups_of(section_cls), key=lambda g: _OWNERS.get((section_cls, g), g))


def _names(value: Any) -> list:
    """The component names in a slot's value: a name, a list of names, a grid of either."""
    values = value if isinstance(value, list) else [value]
    out: list = []
    for v in values:
        out += [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]
    return out


def active_names(section_cls: type, node: Any) -> list[str]:
    """The groups a section (object or raw mapping) uses: the components its first slot names;
    the components of a dependent slot (``dependent_slots``) when a named component's options
    ``uses`` it (ddpm uses network and schedule); the components of the other slots; and the
    shared groups.  A list in a slot (several components, or a grid) counts every value."""
    get = node.get if isinstance(node, dict) else (lambda k, d=None: getattr(node, k, d))
    slots = getattr(section_cls, "slots", ())
    groups = groups_of(section_cls)
    if not slots:
        return [g for g, (_, s) in groups.items() if s is None]
    dependent = getattr(section_cls, "dependent_slots", ())
    out = _names(get(slots[0]))
    for primary in list(out):
        uses = getattr(groups.get(primary, (None,))[0], "uses", ())
        out += [v for slot in dependent if slot in uses for v in _names(get(slot))]
    out += [v for slot in slots[1:] if slot not in dependent for v in _names(get(slot))]
    out += [g for g, (_, s) in groups.items() if s is None]
    return list(dict.fromkeys(out))


def legacy_owners(section_cls: type) -> dict[str, list[tuple[str, str]]]:
    """Flat key of the old layout -> [(group, field)] of the groups that own it now."""
    out: dict[str, list[tuple[str, str]]] = {}
    for comp, (ocls, _) in groups_of(section_cls).items():
        for f in dataclasses.fields(ocls):
            out.setdefault(old_name(f), []).append((comp, f.name))
    return out


class ComponentSection:
    """A config section whose ``slots`` fields name components, each component's options a group
    ``<section>.<component>`` of its own (an instance of the options dataclass it registered).

    ``section.group("mlp")`` (or ``section.mlp``) is a group; ``section.options()`` the options of
    the component named by the first slot.  Reading a flat key of the old layout
    (``section.guidance_scale``) still works for code written before, with a note."""

    key = ""  # the section's key in the config (generator)
    slots: tuple = ()
    dependent_slots: tuple = ()  # slots whose component is used only when the first slot's ``uses`` it

    def __post_init__(self) -> None:
        self.__dict__["_groups"] = {n: o() for n, (o, _) in groups_of(type(self)).items()}

    def group(self, name: str) -> Any:
        groups = self.__dict__.setdefault("_groups", {})
        if name not in groups:
            entry = groups_of(type(self)).get(name)
            if entry is None:
                raise KeyError(f"{type(self).__name__}: no options registered for {name!r}")
            groups[name] = entry[0]()
        return groups[name]

    def set_group(self, name: str, value: Any) -> None:
        self.__dict__.setdefault("_groups", {})[name] = value

    def groups(self) -> dict[str, Any]:
        for name in groups_of(type(self)):
            self.group(name)
        return dict(sorted(self.__dict__["_groups"].items()))

    def options(self, slot: Optional[str] = None) -> Any:
        """The options of the component named by ``slot`` (the first slot by default); None when it
        registered none."""
        name = getattr(self, slot or self.slots[0])
        return self.group(name) if isinstance(name, str) and name in groups_of(type(self)) else None

    def active(self) -> list[str]:
        return active_names(type(self), self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        registered = groups_of(type(self))
        owners = legacy_owners(type(self)).get(name, [])
        active = self.active()
        flat = sorted(owners, key=lambda o: o[0] not in active)  # the components in use first
        if name in registered and not [o for o in flat if o[0] in active]:
            return self.group(name)
        for comp, fname in flat[:1]:  # a flat key of the old layout, read by code written before
            section = getattr(type(self), "key", type(self).__name__)
            note_once(f"read {section}.{name}", f"{section}.{name} is read from {section}.{comp}.{fname}; "
                      f"components now receive their options or read {section}.{comp}.{fname}")
            return getattr(self.group(comp), fname)
        raise AttributeError(f"{type(self).__name__} has no key {name!r}")

    def __eq__(self, other: Any) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(self))
                and self.groups() == other.groups())
