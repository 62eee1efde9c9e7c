"""The generation loop: interaction models, the chain runner, resume."""
from .interactions import INTERACTIONS, Interaction, History, Pool  # noqa: F401
from .experiment import Experiment  # noqa: F401
