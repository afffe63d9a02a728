"""``python -m cc_executor.temporal worker --address HOST:PORT --task-queue Q``."""

import sys

from ._worker import main

sys.exit(main())
