"""The errors of run-folder I/O."""
from __future__ import annotations

from ..config import ConfigError


class RunLocked(RuntimeError):
    """Another live process holds the run folder's lock."""


class DamagedFile(ConfigError):
    """A file of a run folder that genloop reads back is damaged or was edited (the message
    names the file and how to recover)."""


class NotARunFolder(ConfigError):
    """The output folder holds files genloop did not write."""
