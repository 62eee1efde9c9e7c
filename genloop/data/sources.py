"""Imports every built-in data source so that it registers itself in ``DATASETS``."""
from . import digits  # noqa: F401
from . import lowdim  # noqa: F401
from . import folder  # noqa: F401
from . import mnist  # noqa: F401
from . import npz  # noqa: F401
from . import shapes  # noqa: F401
from . import text  # noqa: F401  (shakespeare, text, zipf-markov)
from . import zipf  # noqa: F401  (zipf-markov)
