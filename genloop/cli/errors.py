"""Errors as one line: what to do about a failed file operation, and the error classes of
modules that may not be imported (``genloop status`` does not import torch)."""
from __future__ import annotations

import errno
import sys

# What to do about a failed file operation, by errno.
_OS_HINTS = {
    errno.EACCES: "no permission: choose a folder you may write (-o) or change its permissions",
    errno.EPERM: "not permitted: choose a folder you may write (-o) or change its permissions",
    errno.EROFS: "read-only file system: choose an output folder on a writable disk (-o)",
    errno.ENOSPC: "no space left on the disk: free some space or choose another output folder (-o); "
                  "rerun the same command to resume",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder (-o); "
                  "rerun the same command to resume",
    errno.ENAMETOOLONG: "a file name is too long: use a shorter output folder path or shorter grid values",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "a folder where a file is expected: give a file",
    errno.ENOENT: "no such file or folder: check the path",
}


def os_error_line(exc: OSError) -> str:
    """A failed file operation as one line: the file(s), the system's reason and what to do."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    hint = _OS_HINTS.get(exc.errno, "check the path, its permissions and the disk")
    return f"{where + ': ' if where else ''}{exc.strerror or exc} ({hint})"


class _NotRaised(Exception):
    """Stands for the error class of a module that was not imported (so none of its errors was raised)."""


def loaded(module: str, name: str) -> type:
    """The error class ``module.name`` if ``module`` was imported, else one that nothing raises."""
    mod = sys.modules.get(module)
    return getattr(mod, name) if mod is not None else _NotRaised
