"""`python -m gates …` is the `gates` command."""

import sys

from gates.cli import main

sys.exit(main())
