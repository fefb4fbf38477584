"""``python -m solsa.cli`` (and ``torchrun -m solsa.cli``): the ``solsa`` command."""

import sys

from . import main

sys.exit(main())
