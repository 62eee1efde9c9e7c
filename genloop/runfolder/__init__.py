"""Run-folder I/O, one job per module:

* ``layout``: every path and file name of a run folder (``Layout``), chain ids, what a folder is;
* ``files``: atomic, durable writes (temp file in the same folder + rename), JSON, .npz, hashes;
* ``weights``: checksummed safetensors files (models, training states);
* ``tables``: CSV tables and JSON lines;
* ``rows``: a chain's checksummed row log (``rows.jsonl``);
* ``done``: verified generations (the ``DONE`` record of each file's size and SHA-256);
* ``lock``: one writer per folder (``run.lock``);
* ``store``: ``RunStore``, the typed reads and writes of one run folder;
* ``status``: how far a run folder has got (``genloop status``).

A killed run never leaves a half-written file that looks finished, and a resume checks
what it reads back (``docs/reliability.md``).  Everything is importable from here.
"""
from __future__ import annotations

from .done import check_done, read_done, write_done
from .errors import DamagedFile, NotARunFolder, RunLocked
from .files import (atomic_write, file_mode, in_parallel, json_bytes, jsonable, load_npz, npz_bytes, read_json, read_json_checked,
                    save_npz, sha256_file, write_bytes, write_files, write_json, write_text)
from .layout import (CHAIN_ID, FAILED_NAME, LOCK_NAME, MARKER_NAME, MAX_CHAIN_ID, RUN_FOLDER_ENTRIES, TEMP_FILE, Layout,
                     check_chain_id, clean_temp_files, folder_kind)
from .lock import acquire_lock, describe_holder, holder_alive, holds_lock, lock_holder, release_lock, update_lock
from .rows import ROW_HASH, row_line
from .store import RunStore
from .tables import csv_value, read_csv, write_csv, write_jsonl
from .weights import WEIGHTS_HASH, load_weights, read_weights, save_weights, weights_bytes

__all__ = [
    "CHAIN_ID", "FAILED_NAME", "LOCK_NAME", "MARKER_NAME", "MAX_CHAIN_ID", "ROW_HASH", "RUN_FOLDER_ENTRIES",
    "TEMP_FILE", "WEIGHTS_HASH", "DamagedFile", "Layout", "NotARunFolder", "RunLocked", "RunStore",
    "acquire_lock", "atomic_write", "check_chain_id", "check_done", "clean_temp_files", "csv_value",
    "describe_holder", "file_mode", "folder_kind", "holder_alive", "holds_lock", "json_bytes", "jsonable",
    "load_npz", "load_weights", "lock_holder", "npz_bytes", "read_csv", "read_done", "read_json",
    "read_json_checked", "read_weights", "release_lock", "row_line", "save_npz", "save_weights", "sha256_file",
    "update_lock", "weights_bytes", "write_bytes", "write_csv", "write_done", "write_files", "write_json",
    "write_jsonl", "write_text",
]
