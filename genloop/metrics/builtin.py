"""Imports every built-in metric so that it registers itself in ``METRICS``."""
from . import classifier  # noqa: F401
from . import lowdim  # noqa: F401  (frechet, wasserstein, variance_ratio on vector data)
