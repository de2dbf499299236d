"""Copies made by `invoke new` pass their own gates with no edit, and a later template version
merges into a copy that has changes of its own, which stays green.

Slow (each copy syncs its environments and runs its gates): the full copy runs deps, static and
unit; the bare copy every phase and its unit phase in two shards, then takes a template update
and runs deps, static, unit and bench again (the bench gate then compares with the copy's first,
green commit).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from integration.template.copies import TEMPLATE_NAME, files_naming, git, new, said, uv_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def check_made(copy: Path, template: Path, name: str, bare: bool) -> None:
    """What `new` promises of any copy, before anything runs in it."""
    assert files_naming(copy, TEMPLATE_NAME) == [".template.toml"]
    assert git(copy, "log", "--format=%s").splitlines() == [
        f"Made from a template at {git(template, 'rev-parse', 'HEAD')[:12]} (see .template.toml)"
    ]
    assert git(copy, "status", "--porcelain") == ""
    assert list((copy / ".gates").iterdir()) == []
    provenance = tomllib.loads((copy / ".template.toml").read_text())
    assert provenance["template"] == {
        "source": str(template),
        "commit": git(template, "rev-parse", "HEAD").strip(),
        "name": TEMPLATE_NAME,
    }
    assert provenance["answers"]["name"] == name
    assert provenance["answers"]["bare"] is bare
    package = name.replace("-", "_")
    assert (copy / "backend" / "src" / package / "__init__.py").is_file()
    for local in (".venv", ".nox", ".hangar", f".{package}", "node_modules", "__pycache__"):
        assert not list(copy.rglob(local)), f"{local} travelled into the copy"


def passed(result_stdout: str, *gates: str) -> bool:
    return all(f"PASSED  {gate}" in result_stdout for gate in gates)


def test_a_full_copy_passes_its_gates_with_no_edit(template: Path, scratch: Path) -> None:
    copy = scratch / "acme"
    made = new(template, copy, "--name", "acme", "--description", "Acme's machines.")
    assert made.returncode == 0, said(made)
    check_made(copy, template, "acme", bare=False)
    assert (copy / "frontend").is_dir()
    assert "ACME_DATA_DIR" in (copy / "README.md").read_text()

    gates = uv_run(copy, "acme", "invoke", "gates", "--only", "deps,static,unit")

    assert gates.returncode == 0, said(gates)
    assert "FAILED" not in gates.stdout


def test_a_bare_copy_passes_every_gate_and_takes_a_template_update(
    template_clone: Path, scratch: Path
) -> None:
    name = "beacon-app"
    copy = scratch / name
    made = new(template_clone, copy, "--name", name, "--bare")
    assert made.returncode == 0, said(made)
    check_made(copy, template_clone, name, bare=True)
    assert not (copy / "frontend").exists()

    first = uv_run(copy, name, "invoke", "gates")
    assert first.returncode == 0, said(first)
    assert passed(first.stdout, "deps/", "static/", "unit/", "e2e/e2e", "integration/integration")
    assert "FAILED" not in first.stdout
    docs = uv_run(copy, name, "nox", "-s", "docs")  # the one session of `nox` no gate runs
    assert docs.returncode == 0, said(docs)
    # Its CI's way, here: the unit tier in two shards, side by side, merged.
    sharded = uv_run(copy, name, "invoke", "gates", "--shards", "2", "--only", "unit")
    assert sharded.returncode == 0, said(sharded)
    assert passed(sharded.stdout, "unit/serial", "unit/isolation")

    # The project's change, committed ...
    page = copy / "backend" / "src" / "beacon_app" / "page.py"
    page.write_text(page.read_text().replace('TITLE = "BeaconApp"', 'TITLE = "BeaconApp"  # ours'))
    git(copy, "commit", "--quiet", "--all", "-m", "our note on the title")
    # ... and the template's later commit: a new test in the bare package, a line in a doc.
    later_test = template_clone / "tools/template/bare/backend/tests/test_later.py"
    later_test.write_text(
        '"""A test the template added later."""\n\n'
        "from hangar.page import render_page\n\n\n"
        "def test_the_page_is_html() -> None:\n"
        '    assert render_page().startswith("<!doctype html>")\n'
    )
    gates_doc = template_clone / "docs" / "gates.md"
    gates_doc.write_text(gates_doc.read_text() + "\nA later line of the template.\n")
    git(template_clone, "add", "--all")
    git(template_clone, "commit", "--quiet", "-m", "a later template version")
    newest = git(template_clone, "rev-parse", "HEAD").strip()

    update = uv_run(copy, name, "invoke", "template-update")

    assert update.returncode == 0, said(update)
    assert "added backend/tests/test_later.py" in update.stdout
    assert "updated docs/gates.md" in update.stdout
    assert 'TITLE = "BeaconApp"  # ours' in page.read_text()
    assert "from beacon_app.page import" in (copy / "backend/tests/test_later.py").read_text()
    assert (copy / "docs" / "gates.md").read_text().endswith("\nA later line of the template.\n")
    assert f'commit = "{newest}"' in (copy / ".template.toml").read_text()
    git(copy, "add", "--all")
    git(copy, "commit", "--quiet", "-m", "template update")

    again = uv_run(copy, name, "invoke", "gates", "--only", "deps,static,unit,bench")

    assert again.returncode == 0, said(again)
    assert passed(again.stdout, "deps/", "static/", "unit/serial", "bench/compare")
    assert "FAILED" not in again.stdout
