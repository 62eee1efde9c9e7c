"""Pictures and reports drawn from a run folder (read through ``store``).
Only the CLI (and the notebook API) import this package."""
from .plots import plot_run  # noqa: F401
