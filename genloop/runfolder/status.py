"""How far a run folder has got (``genloop status RUN_DIR``, ``genloop.status``).

Read through ``RunStore`` without the writer's lock, so it works while a run is
writing the folder (it may then see a generation that finishes a moment later).
Per chain: generations finished / planned, its state (``done``, ``pending``, or
the status of its last failure from ``FAILED.json``: ``failed``, ``diverged``,
``invalid``), the last metric row and the mean time per generation.  Over the
run: the writer (from ``run.lock``: running, stale, or on another host), totals
and an ETA:

* while a run is writing the folder and has finished generations since it started,
  the ETA is the generations left divided by the rate it has reached (generations
  whose ``DONE`` is newer than the lock, per second of its run);
* otherwise it is generations left x mean seconds per generation, divided by the
  writer's workers (1 when nothing runs: the time the rest would take one chain at
  a time).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional, Union

from .lock import describe_holder, holder_alive, lock_holder
from .store import RunStore

# Columns of a metric row that identify or time it (not shown as the row's headline numbers).
_ID = ("chain", "seed", "generation")
_TIME = ("train_seconds", "sample_seconds", "score_seconds", "total_seconds")
# Headline metrics shown per chain in the text view, in this order, when present.
_HEADLINE = ("accuracy", "cross_entropy", "fid", "kid", "fd_classifier", "fd_inception", "fd_pixels",
             "precision", "recall", "density", "coverage", "variance_ratio", "frechet", "wasserstein")


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _planned(store: RunStore, chains: list[dict]) -> dict[str, Optional[int]]:
    """Planned generations per chain: from chains.json, or (older folders) from config.yaml."""
    out = {c["id"]: c.get("generations") for c in chains}
    if all(v is not None for v in out.values()):
        return out
    try:
        from ..chains import expand

        legacy = {c.id: c.config.loop.generations for c in expand(store.read_config())}
    except Exception:  # noqa: BLE001 - an unreadable config: planned counts unknown
        legacy = {}
    return {cid: v if v is not None else legacy.get(cid) for cid, v in out.items()}


def _writer(root: Path) -> dict:
    info = lock_holder(root)
    if info is None:
        return {"state": "none"}
    alive = holder_alive(info)
    state = "running" if alive else "stale" if alive is False else "unknown"
    out = {"state": state, "holder": describe_holder(info)}
    out.update({k: info[k] for k in ("pid", "host", "started", "started_unix", "workers", "backend", "threads")
                if k in info})
    return out


def _chain_progress(store: RunStore, ch: dict, started: Optional[float]) -> tuple[int, list, Optional[dict], int]:
    """(generations finished, their seconds, the last row, how many finished since ``started``)
    of one chain: one read of its rows.jsonl (only its last row parsed) and one stat per
    generation folder, not a read of the log per generation."""
    cid = ch["id"]
    logged, last_logged = store.log_brief(cid)
    done, recent = 0, 0
    times, last = [], None
    while True:
        if done in logged:
            t, row = logged[done], last_logged if last_logged and last_logged.get("generation") == done else None
        else:
            if not store.has_folder(cid, done):
                break
            try:
                row = store.load_gen_metrics(cid, done)
            except (FileNotFoundError, ValueError):
                row = None
            t = _number(row.get("total_seconds")) if row else None
            if started is not None:
                try:
                    if store.done_path(cid, done).stat().st_mtime >= started:
                        recent += 1
                except FileNotFoundError:
                    pass
        done += 1
        if row is not None:
            last = row
        if t is not None and not math.isnan(t):
            times.append(t)
    return done, times, last, recent


def _chain_entry(store: RunStore, ch: dict, plan: Optional[int], done: int, times: list,
                 last: Optional[dict]) -> dict:
    cid = ch["id"]
    failure = store.failure(cid)
    state = "done" if plan is not None and done >= plan else (failure or {}).get("status", "pending")
    entry = {"id": cid, "varied": ch.get("varied", {}), "seed": ch.get("seed"), "finished": done,
             "planned": plan, "state": state,
             "seconds_per_generation": sum(times) / len(times) if times else None, "last_row": last}
    if failure:
        entry["failure"] = {k: failure.get(k) for k in ("status", "error", "attempts", "time")}
    return entry


def _eta(chains: list[dict], writer: dict, started: Optional[float], recent: int, remaining: int,
         mean: Optional[float]) -> tuple[Optional[float], Optional[str]]:
    """(ETA in seconds, what it is based on) of the generations left (see the module docstring)."""
    eta, basis = None, None
    if remaining == 0:
        eta, basis = 0.0, "finished"
    elif started is not None and recent:
        elapsed = max(time.time() - float(started), 1e-9)
        eta = remaining * elapsed / recent
        basis = f"rate of this run: {recent} generation(s) in {elapsed:.0f} s"
    elif mean is not None:
        workers = writer.get("workers") if writer["state"] == "running" else 1
        unfinished = sum(1 for c in chains if c["planned"] is not None and c["finished"] < c["planned"])
        par = max(1, min(int(workers) if isinstance(workers, int) else unfinished, unfinished))
        eta = remaining * mean / par
        basis = f"generations left x {mean:.1f} s per generation" + (f" / {par} workers" if par > 1 else
                                                                     " (one chain at a time)")
    return eta, basis


def run_status(run_dir: Union[str, Path]) -> dict:
    """The state of a run folder as a dict (what ``genloop status --json`` prints)."""
    from ..config import ConfigError

    store = RunStore(Path(run_dir))
    if not store.config_path.exists():
        raise ConfigError(f"{store.root}: not a genloop run folder (no {store.CONFIG})")
    chains = store.chains()
    planned = _planned(store, chains)
    writer = _writer(store.root)
    started = writer.get("started_unix") if writer["state"] == "running" else None
    rows_out, recent, seconds = [], 0, []
    for ch in chains:
        done, times, last, new = _chain_progress(store, ch, started)
        recent += new
        seconds += times
        rows_out.append(_chain_entry(store, ch, planned.get(ch["id"]), done, times, last))
    finished = sum(c["finished"] for c in rows_out)
    total = sum(c["planned"] for c in rows_out if c["planned"] is not None)
    remaining = sum(max(0, c["planned"] - c["finished"]) for c in rows_out if c["planned"] is not None)
    mean = sum(seconds) / len(seconds) if seconds else None
    eta, basis = _eta(rows_out, writer, started, recent, remaining, mean)
    return {"run_dir": str(store.root), "writer": writer, "chains": rows_out,
            "generations": {"finished": finished, "planned": total, "remaining": remaining},
            "seconds_per_generation": mean, "eta_seconds": eta, "eta_basis": basis,
            "failures": [{"chain": c["id"], **c["failure"]} for c in rows_out if "failure" in c]}

def _duration(s: Optional[float]) -> str:
    if s is None:
        return "unknown"
    s = float(s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _headline(row: Optional[dict]) -> str:
    if not row:
        return "-"
    skip = set(_ID) | set(_TIME)
    keys = [k for k in _HEADLINE if _number(row.get(k)) is not None]
    if not keys:
        keys = [k for k, v in row.items() if k not in skip and _number(v) is not None
                and not k.startswith(("pool_", "acc_class_", "pred_frac_"))][:4]
    parts = [f"gen {row.get('generation')}"]
    for k in keys[:5]:
        v = float(row[k])
        parts.append(f"{k} {v:.4g}")
    return ", ".join(parts)


def format_status(st: dict) -> str:
    """The text ``genloop status`` prints."""
    w = st["writer"]
    writer = {"none": "no run is writing it",
              "running": f"a run is writing it ({w.get('holder')}"
                         + (f", {w['workers']} worker(s)" if isinstance(w.get("workers"), int) else "") + ")",
              "stale": f"stale lock: {w.get('holder')} is gone (the next run takes it over)",
              "unknown": f"locked by {w.get('holder')} (another host: cannot tell whether it runs)"}[w["state"]]
    gens = st["generations"]
    lines = [f"{st['run_dir']}: {len(st['chains'])} chain(s), generations {gens['finished']} / {gens['planned']} "
             f"finished; {writer}"]
    width = max([len(c["id"]) for c in st["chains"]] + [5])
    lines.append(f"{'chain':{width}s}  {'gens':>7s}  {'state':8s}  {'s/gen':>7s}  last row")
    for c in st["chains"]:
        spg = c["seconds_per_generation"]
        gen_txt = f"{c['finished']}/{c['planned'] if c['planned'] is not None else '?'}"
        lines.append(f"{c['id']:{width}s}  {gen_txt:>7s}  {c['state']:8s}  "
                     f"{(f'{spg:.1f}' if spg is not None else '-'):>7s}  {_headline(c['last_row'])}")
    for f in st["failures"]:
        lines.append(f"failure: {f['chain']}: {f.get('status')} after {f.get('attempts')} attempt(s), "
                     f"{f.get('time')}: {f.get('error')}")
    spg = st["seconds_per_generation"]
    tail = f"time per generation: {f'{spg:.1f} s' if spg is not None else 'unknown'}"
    if gens["remaining"]:
        tail += f"; ETA {_duration(st['eta_seconds'])} for {gens['remaining']} generation(s) left"
        if st["eta_basis"]:
            tail += f" ({st['eta_basis']})"
    else:
        tail += "; all planned generations finished"
    lines.append(tail)
    return "\n".join(lines)

