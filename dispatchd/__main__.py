"""``python -m dispatchd`` runs the broker."""

import sys

from dispatchd.cli import main

sys.exit(main())
