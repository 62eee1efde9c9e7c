"""Progress of a sweep: one bar for the whole sweep (generations finished / total), the
user's ``on_generation`` callback once per newly finished generation of any chain, the
tables rewritten as generations finish, and a heartbeat in the log when no bar is drawn."""
from __future__ import annotations

from typing import Any, Callable, Optional

from tqdm.auto import tqdm

from ..utils import beat, heartbeat_due, mark_activity


class Progress:
    """Counts finished generations per chain, reports new ones (``on_generation``),
    rewrites the tables and drives one tqdm bar for the whole sweep.  Polling looks at a
    chain's files again only when its row log grew or its next generation folder appeared,
    and holds no rows (memory bounded by the number of chains)."""

    def __init__(self, exp: Any) -> None:
        self.exp = exp
        self.store = exp.store
        self.known = {ch.id: self.store.finished_generations(ch.id) for ch in exp.chains}
        self.log_size = {ch.id: -1 for ch in exp.chains}
        self.planned = {ch.id: ch.config.loop.generations for ch in exp.chains}
        self.total = sum(self.planned.values())
        self.callback: Optional[Callable[[dict], None]] = exp.on_generation
        self.bar = tqdm(total=self.total, initial=sum(self.known.values()), desc="sweep", unit="gen",
                        disable=not exp.progress, dynamic_ncols=True, leave=True, mininterval=0.5)

    def report(self, row: dict) -> None:
        """One finished generation: advance the bar, call the user's callback."""
        self.known[row["chain"]] = max(self.known.get(row["chain"], 0), int(row["generation"]) + 1)
        self.bar.update(1)
        mark_activity()
        if self.callback is not None:
            if self.bar.disable:
                self.callback(row)
            else:
                with tqdm.external_write_mode():
                    self.callback(row)

    def _changed(self, chain: str) -> bool:
        try:
            size = self.store.rows_log_path(chain).stat().st_size
        except FileNotFoundError:
            size = -1
        grew = size != self.log_size[chain]
        self.log_size[chain] = size
        return grew or self.store.has_folder(chain, self.known[chain])

    def poll(self) -> int:
        """Report generations finished (by any process) since the last poll."""
        new = 0
        for ch in self.exp.chains:
            if not self._changed(ch.id):
                continue
            for row in self.store.chain_rows(ch.id, self.known[ch.id], varied=ch.varied):
                self.report(row)
                new += 1
        if new:
            self.exp.write_tables(force=False)
        elif self.bar.disable and heartbeat_due():  # workers log no heartbeat of their own: one here
            beat("%d of %d generations finished; %d chain(s) not finished", sum(self.known.values()), self.total,
                 sum(1 for c, n in self.known.items() if n < self.planned[c]))
        return new

    def close(self) -> None:
        self.bar.close()
