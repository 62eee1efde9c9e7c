"""Where everything is in a run folder: ``Layout`` owns every path and file name.

Layout of a run folder::

    RUN/
      .genloop-run                written first: marks a folder genloop made
      config.yaml                 resolved raw config (grid axes kept)
      chains.json                 chain ids and their varied settings
      metrics.csv, metrics.jsonl  one row per (chain, generation)
      summary.csv, onset.csv      per setting over seeds; collapse onset per chain
      reference.csv               metrics of the real test set (reference rows)
      real_passages.json          text data: real passages per chain (the report shows them)
      cache/                      real-data features (data/), the domain classifier, shared models (models/)
      plots/                      metric curves (PNG, PDF)
      report.html
      tracking/                   state and local files of the experiment trackers
      run.lock                    held by the one process writing the folder (PID, host)
      chains/<chain>/
        gen_000/ samples.npz  model.safetensors  grid.png  metrics.json  provenance.npz  DONE
        train_state/            checkpoint of an unfinished generation's training
        rows.jsonl              metric rows of generations that keep no file
        resume_samples.npz      store.samples=last: the latest kept samples, for a resume
        FAILED.json             the chain's last failure (removed when it finishes)

With several lineages (interaction ``ecosystem``) lineage k > 0 writes
``model_l<k>.safetensors``, ``grid_l<k>.png`` and ``passages_l<k>.json`` (lineage 0 the
plain names) and trains from ``train_state/state_l<k>.safetensors``.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from .errors import DamagedFile, NotARunFolder

log = logging.getLogger(__name__)

# The temp files of ``atomic_write`` (``.NAME.XXXXXXXX.tmp``); a killed writer leaves them behind.
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp\Z")
# A chain id (``c<N>_<settings>``, see ``genloop.loading.expand``): one path component.
CHAIN_ID = re.compile(r"c\d+[A-Za-z0-9_.=+-]*")
MAX_CHAIN_ID = 255  # a file name; new ids are cut to 100 characters (genloop.loading.CHAIN_ID_LENGTH)


def check_chain_id(cid: Any, where: str = "chains.json") -> str:
    """``cid`` when it is a chain id genloop writes (one path component: ``c<N>`` then letters,
    digits and ``_.=+-``, at most ``MAX_CHAIN_ID`` characters); else ``DamagedFile``."""
    if not isinstance(cid, str) or not CHAIN_ID.fullmatch(cid) or len(cid) > MAX_CHAIN_ID:
        raise DamagedFile(f"{where}: chain id {cid!r} is not one genloop writes (c<N> then letters, digits, "
                          f"'_.=+-', at most {MAX_CHAIN_ID} characters); the file was edited or damaged: restore "
                          "it from a copy, or run into another output folder")
    return cid


class Layout:
    """The paths of one run folder (``root``) and the names of its files and folders."""

    # the run folder's own files and folders
    MARKER = ".genloop-run"
    CONFIG = "config.yaml"
    CHAINS = "chains.json"
    METRICS_CSV = "metrics.csv"
    METRICS_JSONL = "metrics.jsonl"
    SUMMARY_CSV = "summary.csv"
    ONSET_CSV = "onset.csv"
    REFERENCE_CSV = "reference.csv"
    REAL_PASSAGES = "real_passages.json"
    REPORT_HTML = "report.html"
    LOCK = "run.lock"
    CACHE = "cache"
    DATA_CACHE = "data"  # in cache/: real-data caches (features, tokenizers)
    SHARED_MODELS = "models"  # in cache/: models shared by chains (``genloop.loop.sharing``)
    PLOTS = "plots"
    TRACKING = "tracking"
    CHAINS_DIR = "chains"
    # a chain's
    ROWS_LOG = "rows.jsonl"
    RESUME_SAMPLES = "resume_samples.npz"
    FAILED = "FAILED.json"
    TRAIN_STATE = "train_state"
    # a generation folder's (model, grid and passages per lineage: ``model_name`` and the like)
    SAMPLES = "samples.npz"
    PROVENANCE = "provenance.npz"
    METRICS_JSON = "metrics.json"
    DONE = "DONE"
    GRID_GLOB = "grid*.png"  # every lineage's grid
    PASSAGES_GLOB = "passages*.json"  # every lineage's passages
    # The top-level entries genloop writes in a run folder: starting over removes these, never others.
    ENTRIES = frozenset({MARKER, CONFIG, CHAINS, METRICS_CSV, METRICS_JSONL, SUMMARY_CSV, REFERENCE_CSV,
                         REPORT_HTML, CACHE, PLOTS, CHAINS_DIR, LOCK})

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._chain_dirs: dict[str, Path] = {}  # chain id -> its folder (the id checked once)

    # --- file names
    @staticmethod
    def lineage_suffix(lineage: int) -> str:
        """File-name suffix of a lineage's files: none for lineage 0 (so single-lineage runs keep
        their names and every run has ``model.safetensors``), ``_l<k>`` for the others."""
        return f"_l{lineage}" if lineage else ""

    @staticmethod
    def model_name(suffix: str = "") -> str:
        """A generation's model file, ``suffix`` its lineage's (``lineage_suffix``)."""
        return f"model{suffix}.safetensors"

    @staticmethod
    def grid_name(suffix: str = "") -> str:
        """A generation's grid of samples (images), ``suffix`` its lineage's."""
        return f"grid{suffix}.png"

    @staticmethod
    def passages_name(suffix: str = "") -> str:
        """A generation's passages (text), ``suffix`` its lineage's."""
        return f"passages{suffix}.json"

    @staticmethod
    def passages_lineage(path: Path) -> str:
        """The lineage part of a passages file's name (``""`` for lineage 0, ``l1``, ...)."""
        return Path(path).stem[len("passages"):].lstrip("_")

    @staticmethod
    def is_preview(path: Path) -> bool:
        """``path`` is one of a generation's previews: a grid (images) or passages (text)."""
        p = Path(path)
        return (p.name.startswith("grid") and p.suffix == ".png") or (p.name.startswith("passages")
                                                                        and p.suffix == ".json")

    @staticmethod
    def gen_name(generation: int) -> str:
        return f"gen_{generation:03d}"

    @staticmethod
    def train_state_name(lineage: int = 0) -> str:
        return f"state{Layout.lineage_suffix(lineage)}.safetensors"

    # --- the run folder's paths
    @property
    def marker_path(self) -> Path:
        return self.root / self.MARKER

    @property
    def config_path(self) -> Path:
        return self.root / self.CONFIG

    @property
    def chains_path(self) -> Path:
        return self.root / self.CHAINS

    @property
    def lock_path(self) -> Path:
        return self.root / self.LOCK

    @property
    def metrics_csv(self) -> Path:
        return self.root / self.METRICS_CSV

    @property
    def metrics_jsonl(self) -> Path:
        return self.root / self.METRICS_JSONL

    @property
    def summary_csv(self) -> Path:
        return self.root / self.SUMMARY_CSV

    @property
    def onset_csv(self) -> Path:
        return self.root / self.ONSET_CSV

    @property
    def reference_csv(self) -> Path:
        return self.root / self.REFERENCE_CSV

    @property
    def real_passages_path(self) -> Path:
        return self.root / self.REAL_PASSAGES

    @property
    def report_path(self) -> Path:
        return self.root / self.REPORT_HTML

    @property
    def cache_dir(self) -> Path:
        return self.root / self.CACHE

    @property
    def data_cache_dir(self) -> Path:
        """Real-data caches (features, tokenizers)."""
        return self.cache_dir / self.DATA_CACHE

    @property
    def plots_dir(self) -> Path:
        return self.root / self.PLOTS

    @property
    def tracking_dir(self) -> Path:
        return self.root / self.TRACKING

    # --- a chain's paths
    def chain_dir(self, chain: str) -> Path:
        """The folder of a chain; ``chain`` must be a chain id (one path component,
        ``check_chain_id``), so that nothing is ever written outside the run folder."""
        d = self._chain_dirs.get(chain)
        if d is None:
            d = self._chain_dirs[chain] = self.root / self.CHAINS_DIR / check_chain_id(chain, f"{self.chains_path}")
        return d

    def rows_log_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / self.ROWS_LOG

    def resume_samples_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / self.RESUME_SAMPLES

    def failure_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / self.FAILED

    def train_state_dir(self, chain: str) -> Path:
        return self.chain_dir(chain) / self.TRAIN_STATE

    def train_state_path(self, chain: str, lineage: int = 0) -> Path:
        return self.train_state_dir(chain) / self.train_state_name(lineage)

    # --- a generation's paths
    def gen_dir(self, chain: str, generation: int) -> Path:
        return self.chain_dir(chain) / self.gen_name(generation)

    def done_path(self, chain: str, generation: int) -> Path:
        return self.gen_dir(chain, generation) / self.DONE

    def samples_path(self, chain: str, generation: int) -> Path:
        return self.gen_dir(chain, generation) / self.SAMPLES

    def gen_metrics_path(self, chain: str, generation: int) -> Path:
        return self.gen_dir(chain, generation) / self.METRICS_JSON


# Module-level names of the layout's (``LOCK_NAME`` and the like), for the modules that need only a name.
LOCK_NAME = Layout.LOCK
FAILED_NAME = Layout.FAILED
# Written first into every run folder genloop makes: ``--force`` starts over only in a
# folder that has it, or that has a run folder's layout (config.yaml and chains.json).
MARKER_NAME = Layout.MARKER
RUN_FOLDER_ENTRIES = Layout.ENTRIES


def folder_kind(root: Path) -> tuple[str, list[str]]:
    """What ``root`` is to genloop: ``absent``, ``empty`` (nothing but a lock or temp files),
    ``genloop`` (has the marker, or config.yaml and chains.json) or ``foreign``; and the
    entries genloop did not write (for ``foreign``)."""
    root = Path(root)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return "absent", []
    except NotADirectoryError:
        what = "is a file" if root.is_file() else "has a file where a folder should be in its path"
        raise NotARunFolder(f"{root}: {what}, not a folder; choose another output folder (-o)") from None
    own = [e for e in entries if e != LOCK_NAME and not TEMP_FILE.match(e)]
    if not own:
        return "empty", []
    if MARKER_NAME in own or (Layout.CONFIG in own and Layout.CHAINS in own):
        return "genloop", [e for e in own if e not in RUN_FOLDER_ENTRIES]
    return "foreign", [e for e in own if e not in RUN_FOLDER_ENTRIES] or own


def clean_temp_files(root: Path) -> int:
    """Remove the temp files a killed writer left anywhere in the run folder ``root``
    (``TEMP_FILE`` names only; call it holding the lock).  Returns how many went."""
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if TEMP_FILE.match(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    if removed:
        log.info("%s: removed %d temp file(s) left by an interrupted run", root, removed)
    return removed
