"""Presets (the YAML files in ``genloop/presets``) and the reference table of every key
(``genloop config --reference``, ``docs/reference.md``), built from the fields' help and bounds."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import ComponentSection, Config, ConfigError, groups_of, old_name
from .coerce import _hints, _is_section, _type_name
from .loading import load_components


PRESET_DIR = Path(__file__).parent / "presets"


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"preset {name!r} does not exist (known presets: {known})")
    return path


def config_sources(config=None, preset=None) -> list:
    """What ``genloop.run`` and ``genloop.load_config`` merge, in order: the preset's YAML
    (``preset``, a name from ``presets()``), then ``config`` (a YAML path, a dict of keys, or a
    list of those); the ``default`` preset when both are None.  This is the CLI's ``-p NAME -c
    FILE``: the file is merged over the preset."""
    files: list = []
    if preset is not None:
        if not isinstance(preset, str) or not preset:
            raise ConfigError(f"preset={preset!r}: give a preset name as a string, e.g. preset='theory' "
                              f"(known presets: {', '.join(presets())})")
        files.append(preset_path(preset))
    if config is not None:
        files.extend(config if isinstance(config, (list, tuple)) else [config])
    return files or [preset_path("default")]


def presets() -> dict[str, str]:
    """Preset name -> its first comment line (what it is and what it needs)."""
    out = {}
    for p in sorted(PRESET_DIR.glob("*.yaml")):
        first = ""
        for line in p.read_text().splitlines():
            if line.startswith("#"):
                first = line.lstrip("# ").strip()
                break
        out[p.stem] = first
    return out


def reference() -> str:
    """Markdown table of every key, its type, default and help: each section's shared keys, then
    each component's options under ``<section>.<component>`` (and the shared groups, such as
    ``loop.schedule``), each with the flat key it had in earlier versions."""
    load_components()
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        inst = cls()
        fields(cls, hints, inst, prefix)
        if issubclass(cls, ComponentSection):
            for name, (ocls, slot) in groups_of(cls).items():
                doc = (ocls.__doc__ or "").strip().splitlines()[0] if ocls.__doc__ else ""
                what = f"options of {prefix}.{slot}={name}" if slot else "shared options"
                lines.append(f"| **{prefix}.{name}** | {what} | | {doc} |")
                fields(ocls, _hints(ocls), ocls(), f"{prefix}.{name}", old=prefix)

    def fields(cls: type, hints: dict, inst: object, prefix: str, old: str = "") -> None:
        for f in dataclasses.fields(cls):
            path = f"{prefix}.{f.name}" if prefix else f.name
            tp = hints[f.name]
            if _is_section(tp):
                lines.append(f"| **{path}** | section | | {f.metadata.get('help', '')} |")
                walk(tp, path)
                continue
            help_ = f.metadata.get("help", "")
            bounds = [f"{w} {f.metadata[k]}" for k, w in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if f.metadata.get(k) is not None]
            if f.metadata.get("choices"):
                bounds.append("one of " + ", ".join(map(str, f.metadata["choices"])))
            if old:
                bounds.append(f"was {old}.{old_name(f)}")
            extra = f" ({'; '.join(bounds)})" if bounds else ""
            default = getattr(inst, f.name)
            lines.append(f"| `{path}` | {_type_name(tp)} | `{default!r}` | {help_}{extra} |")

    walk(Config, "")
    return "\n".join(lines) + "\n"


REFERENCE_HEADER = """# Configuration reference

Every key, its type, default and meaning, generated from the code (`genloop config
--reference` prints the table; `python docs/gen_reference.py` writes this page).  A list given
for a scalar key is a sweep axis (one chain per value).  How keys are set (YAML files,
`key=value` overrides, presets, plugins): [Configuration](config.md).

"""


def reference_page() -> str:
    """``docs/reference.md``: a header and the ``reference()`` table."""
    return REFERENCE_HEADER + reference()
