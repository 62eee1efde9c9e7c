"""Checking a built config: registry names first, then each component's own options, then the
cross-field checks layers above register (``register_validator``), all before any work."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from .config import ComponentSection, Config, ConfigError, groups_of


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


def memory_bytes() -> Optional[int]:
    """This machine's physical memory in bytes (None when it cannot be told)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: Config) -> None:
    """Refuse sizes that cannot fit in memory, before any work (``data.count`` of a synthetic source)."""
    per = getattr(cfg.data.options(), "item_bytes", None)  # a synthetic source says what an item takes
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
