"""``python -m metricattack`` (and ``torchrun -m metricattack``): the command line."""

import sys

from metricattack.cli import main

sys.exit(main())
