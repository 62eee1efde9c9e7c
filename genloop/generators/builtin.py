"""Imports every built-in generator so that it registers itself."""
from . import diffusion  # noqa: F401
