"""A pytest plugin that writes each collected test's markers to a JSON file.

Loaded by the `collect` and `categorization` checks as `-p gates_collection` (a copy of this file,
see gates.pytest_plugins) with `GATES_COLLECTION_REPORT=PATH`; it runs after the root conftest has
added the tier markers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the gate engine imports this module in environments without pytest
    import pytest

REPORT_VARIABLE = "GATES_COLLECTION_REPORT"


def pytest_collection_finish(session: pytest.Session) -> None:
    target = os.environ.get(REPORT_VARIABLE)
    if not target:
        return
    items = {item.nodeid: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    Path(target).write_text(json.dumps(items, indent=0, sort_keys=True))
