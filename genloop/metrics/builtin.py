"""Imports every built-in metric so that it registers itself in ``METRICS``."""
from . import classifier  # noqa: F401
from . import image_metrics  # noqa: F401  (fd, kid, prdc; imports the feature extractors)
from . import lowdim  # noqa: F401  (frechet, wasserstein, variance_ratio on vector data)
from . import text  # noqa: F401  (text: perplexity, distinct-n, tail survival, ...)
