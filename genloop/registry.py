"""A tiny name -> factory registry.

Every pluggable family (datasets, generators, samplers, networks, interaction
models, metrics, feature extractors) owns one ``Registry``.  New kinds plug in
with ``@REGISTRY.register("name")``; the loop looks them up by name and never
branches on names itself.

A component that has options of its own declares them in a small dataclass of
``opt(...)`` fields next to its code and registers both in one line::

    @GENERATORS.register("gmm", options=GMMOptions)

The registry names the config section and the slot (the field) that names the component
(``Registry("generator", section=GeneratorConfig, slot="name")``); the options are the
component's own group: users write ``generator.gmm.components`` (``data.gaussian.dim``,
``metrics.kid.subset_size``) and the component receives its ``GMMOptions`` when it is built.

The registries start empty: ``genloop.load_builtins()`` (``genloop.builtins``) registers
every built-in component; ``genloop.run``, ``genloop.load_config``, the CLI and every sweep
worker call it first.  A name looked up before that is refused with a line that says so.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")

NOT_LOADED = ("no components are loaded yet; call genloop.load_builtins() first "
              "(genloop.run, genloop.load_config and the CLI do)")

_builtins_loaded = False  # set by genloop.builtins once every built-in is registered


def mark_builtins_loaded() -> None:
    global _builtins_loaded
    _builtins_loaded = True


def require_builtins() -> None:
    """A ``ConfigError`` saying so when the built-ins are not registered yet (a config
    cannot be resolved without their names and keys)."""
    if not _builtins_loaded:
        from .groups import ConfigError

        raise ConfigError(NOT_LOADED)


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factory functions), and each name to
    its options dataclass (or None)."""

    def __init__(self, kind: str, section: Optional[type] = None, slot: Optional[str] = None) -> None:
        self.kind = kind
        self.section = section  # the config section that a component's options join
        self.slot = slot  # the field of ``section`` naming the component: options are a group of their own
        self._items: Dict[str, T] = {}
        self._options: Dict[str, Optional[type]] = {}

    def register(self, name: str, options: Optional[type] = None) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (a duplicate name is an error), with
        its ``options`` dataclass, the group ``<section>.<name>`` of this family's config section."""
        if options is not None and (self.section is None or self.slot is None):
            raise ValueError(f"{self.kind} {name!r}: this registry has no config section for options")

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if options is not None:
                from .groups import add_group

                add_group(self.section, self.slot, name, options, f"{self.kind} {name!r}")
            self._items[name] = obj
            self._options[name] = options
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            if not _builtins_loaded:
                raise KeyError(f"unknown {self.kind} {name!r}: {NOT_LOADED}") from None
            raise KeyError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def options(self, name: str) -> Optional[type]:
        """The options dataclass ``name`` registered with (None: it has none)."""
        self.get(name)
        return self._options[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
