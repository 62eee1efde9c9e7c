"""``python -m genloop.cli``: the ``genloop`` command."""
import sys

from . import main

sys.exit(main())
