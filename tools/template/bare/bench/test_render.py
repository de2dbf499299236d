"""How fast the page renders (the bench gate compares it with a baseline commit)."""

from __future__ import annotations

from hangar.page import render_page
from testkit.bench import Measure


def test_render_page(measure: Measure) -> None:
    assert "<h1>" in str(measure(render_page, iterations=1000))
