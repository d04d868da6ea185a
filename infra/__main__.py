"""``python -m infra``: the command-line interface (see :mod:`infra.cli`)."""

import sys

from infra.cli import main

sys.exit(main())
