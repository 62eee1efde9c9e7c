"""Which chains of a run folder a config continues: a chain's identity (``chain_key``),
the ids chains keep across runs (``adopt_ids``), and whether a new config only extends
the folder's (``extension_problem``).

Extend, never redo: a folder made with another config is continued when the new config
only raises ``loop.generations``, adds seeds or adds values to a grid key (every chain of
the folder is still a chain of the new config, with as many generations or more);
finished chains and generations keep their chain ids (matched by their resolved config),
new chains get new ids.  Any other change is refused naming the keys that differ.
"""
from __future__ import annotations

import re
from typing import Optional

from ..config import ConfigError
from ..chains import Chain, NON_IDENTITY_SECTIONS, expand, identity_dict
from ..loading import get_path, to_dict
from ..runfolder import RunStore
from ..utils import digest
from .interactions import INTERACTIONS


class RunFolderMismatch(ConfigError):
    """The run folder was made with a different config."""


EXTENDABLE = "only raising loop.generations, adding seeds or adding values to a grid key continue a run folder"


def chain_key(chain: Chain) -> str:
    """What identifies a chain's results in a run folder across runs: a hash of its resolved
    config less ``loop.generations`` (unless that is a grid key), so that a chain keeps its
    identity (and id) when generations, seeds or grid values are added."""
    d = identity_dict(chain.config)
    for section in NON_IDENTITY_SECTIONS:  # store.*, sweep.*: how a run is kept or spread, not what it computes
        d.pop(section, None)
    if "loop.generations" not in chain.varied:
        d["loop"].pop("generations", None)
    return digest(d)


def _values(raw: dict, key: str) -> list:
    try:
        v = get_path(raw, key)
    except (KeyError, TypeError):
        return []
    return [] if v is None else v if isinstance(v, list) else [v]


def extension_problem(old_raw: dict, new_raw: dict, new_chains: list[Chain], changed: list[str]) -> Optional[str]:
    """None when ``new_raw`` extends the run folder made with ``old_raw`` (every old chain is
    a new chain with as many generations or more, and its earlier generations would not
    change); else what is refused, naming the keys that differ."""
    try:
        old_chains = expand(old_raw)
    except (ConfigError, KeyError, TypeError, ValueError):
        return f"keys that differ: {', '.join(changed)}"
    new_by_key = {chain_key(c): c for c in new_chains}
    missing = False
    for oc in old_chains:
        nc = new_by_key.get(chain_key(oc))
        if nc is None:
            missing = True
            continue
        og, ng = oc.config.loop.generations, nc.config.loop.generations
        if ng < og:
            return f"keys that differ: loop.generations ({og} -> {ng}: a run folder can gain generations, not lose them)"
        if ng != og:
            why = INTERACTIONS.get(nc.config.loop.interaction).generations_matter(nc.config)
            if why:
                return f"keys that differ: loop.generations ({why})"
    if missing:
        grown = [k for k in changed if all(v in _values(new_raw, k) for v in _values(old_raw, k))
                 and k != "loop.generations"]
        return f"keys that differ: {', '.join([k for k in changed if k not in grown] or changed)}"
    return None


def adopt_ids(chains: list[Chain], store: RunStore) -> None:
    """Chains already in the run folder keep their ids (found by ``chain_key``); chains
    new to it are numbered after the folder's (``c<N>_<settings>``)."""
    old = store.chains()
    if not old:
        return
    keys = [c.get("key") for c in old]
    if None in keys:  # chains.json written before keys were recorded: they follow config.yaml
        try:
            legacy = expand(store.read_config())
        except Exception:  # noqa: BLE001 - an unreadable old config: nothing to adopt
            return
        if [c.id for c in legacy] != [c.get("id") for c in old]:
            return
        keys = [chain_key(c) for c in legacy]
    by_key: dict[str, list[str]] = {}
    for k, c in zip(keys, old):
        by_key.setdefault(k, []).append(c["id"])
    taken = {c["id"] for c in old}
    numbers = [int(m.group(1)) for m in (re.match(r"c(\d+)", i) for i in taken) if m]
    nxt = max(numbers, default=-1) + 1
    for ch in chains:  # chains of the folder keep their ids; new ones are numbered after them
        ids = by_key.get(chain_key(ch))
        if ids:
            ch.id = ids.pop(0)
        else:
            ch.id = re.sub(r"^c\d+", f"c{nxt:02d}", ch.id)
            nxt += 1
