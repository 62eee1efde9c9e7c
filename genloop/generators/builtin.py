"""Imports every built-in generator so that it registers itself."""
from . import diffusion  # noqa: F401
from . import analytic  # noqa: F401  (gaussian, gmm, kde)
from . import ngram  # noqa: F401  (interpolated Kneser-Ney, text)
from . import gpt  # noqa: F401  (small decoder-only transformer, text)
from . import hf  # noqa: F401  (pretrained causal LM via transformers, text; transformers imported only when used)
