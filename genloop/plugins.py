"""Plugins: the installed ``genloop.plugins`` entry points and the modules a config names.

A plugin is a module that registers components (``@GENERATORS.register("name")``) when it
is imported.  ``load`` imports each entry point once and each named module once, and turns
an import that fails into one ``ConfigError`` line naming the module.  It imports no
component itself, so the configuration loader (``genloop.loading``) can call it for a
config's ``plugins`` key; ``genloop.load_builtins`` registers the built-ins and then calls it.
"""
from __future__ import annotations

import importlib
import logging
from typing import Iterable, Optional

from .config import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "genloop.plugins"

_imported: set = set()
_entry_points_loaded = False


def load(plugins: Optional[Iterable[str]] = None) -> None:
    """Import the installed ``genloop.plugins`` entry points (once) and each module in
    ``plugins`` (once each).  A module that cannot be imported is a ``ConfigError``
    naming it."""
    _load_entry_points()
    for name in plugins or ():
        if name in _imported:
            continue
        if not isinstance(name, str) or not name:
            raise ConfigError(f"plugins: {name!r} is not a module name (e.g. mypkg.mymodel)")
        _import(name)
        _imported.add(name)
        log.info("plugin %s imported", name)


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"plugins: cannot import module {name!r} ({exc}); install it or put its "
                          "folder on PYTHONPATH") from None
    except ConfigError:
        raise
    except SystemExit as exc:  # a plugin error, not genloop's exit (its code would mean something else)
        raise ConfigError(f"plugins: module {name!r} called sys.exit({exc.code!r}) while being imported; "
                          "a plugin must raise an exception instead") from None
    except Exception as exc:  # a plugin that fails on import: name it, keep the cause
        raise ConfigError(f"plugins: importing module {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except (Exception, SystemExit) as exc:
            raise ConfigError(f"plugins: entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP} "
                              f"failed to load: {type(exc).__name__}: {exc}") from exc
        log.info("plugin entry point %s (%s) loaded", ep.name, ep.value)
