"""Imports every built-in metric so that it registers itself in ``METRICS``."""
from . import classifier  # noqa: F401
