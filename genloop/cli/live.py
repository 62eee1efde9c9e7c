"""``genloop run``'s report, redrawn while the run goes."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

# While a run goes, its report is redrawn after a finished generation at most every
# LIVE_REPORT_SECONDS, and only once LIVE_REPORT_SHARE of the time since the last draw
# ended covers that draw's duration (the redraws take at most a few per cent of the run).
LIVE_REPORT_SECONDS = 15.0
LIVE_REPORT_SHARE = 0.04


class LiveReport:
    """Redraws ``RUN/report.html`` (its tables first) while a run goes: once when the run
    folder is prepared, after the first finished generation, then throttled by time
    (``LIVE_REPORT_SECONDS``, ``LIVE_REPORT_SHARE``).  The redraws save only the PNGs the page shows; the figures'
    PDFs (and ``plot_run``'s per-chain curves) are drawn once, at the end.  A redraw that fails is
    reported once and not tried again; the run goes on."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.exp = None
        self.due = 0.0
        self.draws = 0
        self.seconds = 0.0
        self.off = False
        self.first_generation = True

    def __call__(self, force: bool = False) -> None:
        if self.off or self.exp is None or (not force and time.monotonic() < self.due):
            return
        from ..report.html import write_report

        t0 = time.monotonic()
        quiet = logging.getLogger("genloop.report")  # "no generation yet" and the like: said at the end if still so
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self.exp.write_tables()
            write_report(self.out, formats=("png",))  # the PDFs: once, at the end
        except Exception as exc:  # noqa: BLE001 - the report is a view; the run must go on
            self.off = True
            print(f"genloop: the report could not be redrawn while running ({type(exc).__name__}: {exc}); "
                  "it is drawn at the end", file=sys.stderr, flush=True)
            return
        finally:
            quiet.setLevel(level)
        spent = time.monotonic() - t0
        self.draws += 1
        self.seconds += spent
        self.due = time.monotonic() + max(LIVE_REPORT_SECONDS, spent / LIVE_REPORT_SHARE)

    def generation(self) -> None:
        first, self.first_generation = self.first_generation, False
        self(force=first)
