"""`new` refuses bad input with one line and writes nothing; `update` refuses a dirty tree and
lists its conflicts. Quick: no copy's gates run here (test_copies.py runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integration.template.copies import copy_environ, git, new, said
from testkit.waiting import NotYet, retry

pytestmark = pytest.mark.timeout(300)


def listing(root: Path) -> list[str]:
    """Every path under `root`, but git's own bookkeeping (`git status` below speaks for it) and
    Python's bytecode caches."""
    paths = (path.relative_to(root) for path in root.rglob("*"))
    return sorted(str(p) for p in paths if p.parts[0] != ".git" and "__pycache__" not in p.parts)


@pytest.mark.parametrize(
    ("case", "name", "says"),
    [
        ("bad name", "Acme_Corp", "--name 'Acme_Corp' is not allowed: use 2 to 32 lowercase"),
        ("taken name", "gates", "the template already has a package `gates`"),
        ("keyword", "class", "is a Python keyword"),
        ("non-empty dest", "acme", "is not empty: choose a new or empty DEST"),
        ("dest in the template", "acme", "is inside the template's checkout"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    template: Path, scratch: Path, case: str, name: str, says: str
) -> None:
    dest = scratch / "acme"
    if case == "non-empty dest":
        dest.mkdir()
        (dest / "notes.txt").write_text("mine\n")
    if case == "dest in the template":
        dest = template / "acme"
    before = listing(scratch), listing(template), git(template, "status", "--porcelain")

    result = new(template, dest, "--name", name)

    assert result.returncode == 2, said(result)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr
    assert (listing(scratch), listing(template), git(template, "status", "--porcelain")) == before


def test_a_killed_new_leaves_nothing_that_the_next_one_keeps(template: Path, scratch: Path) -> None:
    """SIGKILL runs no cleanup: the work dir stays beside DEST; the next `new` removes it."""
    dest = scratch / "acme"
    command = [sys.executable, str(template / "tools" / "template" / "template.py")]
    killed = subprocess.Popen(
        [*command, "new", str(dest), "--name", "acme"],
        cwd=template,
        env=copy_environ("acme"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def work_dir() -> list[Path]:
        assert killed.poll() is None, "new ended before it could be killed"
        if left := list(scratch.glob(".acme.new-*")):
            return left
        raise NotYet("no work dir beside DEST yet")

    try:
        left = retry(work_dir, what="new's work dir beside DEST", timeout=120, interval=0.02)
    finally:
        killed.kill()
        killed.wait()
    assert not dest.exists()
    assert [path.name.startswith(f".acme.new-{killed.pid}-") for path in left] == [True]

    made = new(template, dest, "--name", "acme", "--bare")

    assert made.returncode == 0, said(made)
    assert f"removing {left[0]}, left by a `new` that was killed" in made.stdout
    assert sorted(path.name for path in scratch.iterdir()) == ["acme"]


def update(copy: Path) -> subprocess.CompletedProcess[str]:
    """`template-update` in the copy (the task wraps this script)."""
    return subprocess.run(
        [sys.executable, "tools/template/template.py", "update"],
        cwd=copy,
        env=copy_environ("beacon"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_update_refuses_a_dirty_tree_and_lists_its_conflicts(
    template_clone: Path, scratch: Path
) -> None:
    copy = scratch / "beacon"
    made = new(template_clone, copy, "--name", "beacon", "--bare")
    assert made.returncode == 0, said(made)
    readme = copy / "README.md"
    readme.write_text(readme.read_text().replace("## Two commands", "## Two commands, ours"))
    git(copy, "commit", "--quiet", "--all", "-m", "our heading")
    template_readme = template_clone / "tools" / "template" / "bare" / "README.md"
    text = template_readme.read_text()
    template_readme.write_text(text.replace("## Two commands", "## Two commands, the template's"))
    git(template_clone, "commit", "--quiet", "--all", "-m", "the template's heading")
    newest = git(template_clone, "rev-parse", "HEAD").strip()

    (copy / "scratch.txt").write_text("work in progress\n")
    dirty = update(copy)
    assert dirty.returncode == 2, said(dirty)
    assert "uncommitted changes" in dirty.stderr
    assert newest not in (copy / ".template.toml").read_text()
    (copy / "scratch.txt").unlink()

    merged = update(copy)
    assert merged.returncode == 1, said(merged)
    assert "README.md: both changed the same lines: conflict markers" in merged.stdout
    text = readme.read_text()
    assert "<<<<<<< this project\n## Two commands, ours\n=======\n" in text
    assert f"## Two commands, the template's\n>>>>>>> template {newest[:12]}" in text
    assert f'commit = "{newest}"' in (copy / ".template.toml").read_text()
