"""`python -m hangar` is the `hangar` command."""

import sys

from hangar.cli import main

sys.exit(main())
