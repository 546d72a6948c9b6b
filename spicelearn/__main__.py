"""``python -m spicelearn``: the command line (the ``spicelearn`` script)."""

import sys

from .cli import main

sys.exit(main())
