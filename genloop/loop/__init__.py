"""The generation loop: interaction models, the chain runner, resume."""
from .interactions import INTERACTIONS, Interaction, History, Pool  # noqa: F401
from .experiment import Experiment  # noqa: F401
from .generation import TIME_COLUMNS  # noqa: F401
from .memory import run_in_memory  # noqa: F401
