"""``python -m scheduler_events.simulate``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
