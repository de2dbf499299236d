"""How fast the page renders (the bench gate compares it with a baseline commit)."""

from __future__ import annotations

from collections.abc import Callable

from hangar.page import render_page

Measure = Callable[..., object]  # the `measure` fixture of conftest.py


def test_render_page(measure: Measure) -> None:
    assert "<h1>" in str(measure(render_page))
