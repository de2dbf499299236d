"""The README and docs name only providers that exist: a provider is described once it is built."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import hangar
from hangar.providers.registry import FACTORIES

ROOT = Path(__file__).parents[2]
# A provider's name as prose writes it, and its key in the registry.
PROVIDER_WORDS = {"Proxmox": "proxmox", "E2B": "e2b", "QEMU": "qemu"}


def texts() -> dict[str, str]:
    found = {str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.glob("docs/**/*.md"))}
    found["README.md"] = (ROOT / "README.md").read_text()
    found["noxfile.py"] = (ROOT / "noxfile.py").read_text()
    found["hangar.__doc__"] = hangar.__doc__ or ""
    with (ROOT / "backend" / "pyproject.toml").open("rb") as file:
        found["backend/pyproject.toml"] = tomllib.load(file)["project"]["description"]
    return found


@pytest.mark.parametrize(("word", "provider"), sorted(PROVIDER_WORDS.items()))
def test_every_provider_the_docs_name_is_registered(word: str, provider: str) -> None:
    naming = [name for name, text in texts().items() if re.search(rf"\b{word}\b", text)]
    if provider not in FACTORIES:
        assert naming == [], f"{word} is described but no `{provider}` provider exists"
    else:
        assert "README.md" in naming, f"the `{provider}` provider exists but the README omits it"
