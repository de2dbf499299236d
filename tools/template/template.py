"""Make a project from this template, and bring a later template version into it.

    python tools/template/template.py new DEST --name NAME [--bare] [--description TEXT]
    python tools/template/template.py update [--to REV]

`new` renders the template's committed files (HEAD; uncommitted changes are not copied, and it
says so) for the answers (`rendering.py`: the renames and --bare; `reflow.py`: the lint's
shape), builds the project in a temp dir beside DEST (a fresh lock, a git repository with one
commit, an empty `.gates/`, the provenance file `.template.toml`) and only then moves it into
place: a failure or an interrupt leaves nothing, and what a `new` killed outright (SIGKILL) left
beside DEST the next `new` for that DEST removes.

`update`, run in such a project, renders the template at the recorded commit and at the newer
one the same way and merges what changed into the project (`merging.py`: file by file, three-way,
the old rendering as the base). It refuses a dirty tree, lists every conflict, locks again, moves
the provenance file to the new commit and leaves the result for review: it does not commit,
because conflicts need a person and a clean merge deserves a look before it is history.

Standard library only: this module travels into every copy. Exit status: 0 done, 1 done with
conflicts to resolve, 2 refused (one line says why; nothing was written).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from merging import merge_trees
from reflow import normalize
from rendering import (
    PROVENANCE,
    Answers,
    Name,
    Rendering,
    TemplateError,
    Tree,
    current_umask,
    git,
    read_tree,
    render,
    taken_names,
    template_name,
    write_tree,
)

HERE = Path(__file__).resolve().parent
REFUSED, CONFLICTS = 2, 1
# What `new` and `update` regenerate instead of copying or merging: the lock follows the merged
# pyproject.toml files (`uv lock` keeps every pin it can).
LOCK = "uv.lock"
# Variables that would tie the copy's uv to the environment `new` runs in.
FOREIGN = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
# The copy's first commit when git knows no identity.
FALLBACK_IDENTITY = ("-c", "user.name=template", "-c", "user.email=template@localhost.invalid")


# ------------------------------------------------------------------------------ provenance
@dataclass(frozen=True)
class Provenance:
    """Where a copy came from (`.template.toml`): the template's source and commit, its own
    name (what the renames replaced) and the answers."""

    source: str
    commit: str
    template: str
    answers: Answers

    def render(self) -> str:
        q = json.dumps
        return (
            "# Where this project came from. `uv run invoke template-update` reads it to bring in\n"
            "# what changed in the template since `commit`, and moves `commit` forward.\n"
            "[template]\n"
            f"source = {q(self.source)}\n"
            f"commit = {q(self.commit)}\n"
            f"name = {q(self.template)}  # the template's name, which the renames replaced\n"
            "\n[answers]\n"
            f"name = {q(self.answers.name.label)}\n"
            f"bare = {q(self.answers.bare)}\n"
            f"description = {q(self.answers.description, ensure_ascii=False)}\n"
        )

    @classmethod
    def read(cls, root: Path) -> Provenance:
        path = root / PROVENANCE
        try:
            data = tomllib.loads(path.read_text())
            template, answers = data["template"], data["answers"]
            return cls(
                source=str(template["source"]),
                commit=str(template["commit"]),
                template=str(template["name"]),
                answers=Answers(
                    Name(str(answers["name"])),
                    bool(answers["bare"]),
                    str(answers.get("description", "")),
                ),
            )
        except FileNotFoundError:
            raise TemplateError(
                f"{root} has no {PROVENANCE}: it was not made by `invoke new`"
            ) from None
        except (KeyError, tomllib.TOMLDecodeError) as error:
            raise TemplateError(f"{path}: unreadable ({error})") from None


# ------------------------------------------------------------------------------- processes
def child_environ() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # a missing Python is said, not fetched
    return environ


def run(root: Path, *argv: str) -> None:
    """Run a command in `root`; a failure raises TemplateError with its last words."""
    result = subprocess.run(
        argv, cwd=root, env=child_environ(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        words = (result.stderr or result.stdout).strip().splitlines()
        raise TemplateError(f"{' '.join(argv)}: {words[-1] if words else 'failed'}")


def git_identity(root: Path) -> tuple[str, ...]:
    """No arguments when git knows who commits here, else a stand-in identity."""
    for key in ("user.name", "user.email"):
        probe = subprocess.run(["git", "config", key], cwd=root, capture_output=True, check=False)
        if probe.returncode != 0 or not probe.stdout.strip():
            return FALLBACK_IDENTITY
    return ()


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so the cleanup in `finally` blocks runs."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------- new
def render_copy(tree: Tree, answers: Answers, lengths: bool = False) -> Rendering:
    """The copy's files: renamed (`rendering.render`), then shaped for its lint (`reflow`)."""
    rendering = render(tree, answers)
    normalize(rendering, tree, lengths)
    return rendering


def template_root() -> Path:
    return Path(git(HERE, "rev-parse", "--show-toplevel").decode().strip())


def check_destination(dest: Path, template: Path) -> None:
    if dest == template or template in dest.parents:
        raise TemplateError(f"{dest} is inside the template's checkout {template}: choose another")
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise TemplateError(f"{dest} exists and is no directory: choose a new or empty DEST")
    if dest.is_dir() and any(dest.iterdir()):
        raise TemplateError(f"{dest} is not empty: choose a new or empty DEST")
    if not dest.parent.is_dir():
        raise TemplateError(f"{dest.parent} does not exist: create it, or choose another DEST")


def new(dest_arg: str, name_arg: str, bare: bool, description: str) -> int:
    template = template_root()
    commit = git(template, "rev-parse", "HEAD").decode().strip()
    tree = read_tree(template, commit)
    answers = Answers(Name.parse(name_arg, taken_names(tree)), bare, description.strip())
    if "\n" in answers.description:
        raise TemplateError("--description must be one line")
    dest = Path(dest_arg).expanduser().absolute()
    dest = dest.parent.resolve() / dest.name
    check_destination(dest, template)
    rendering = render_copy(tree, answers, lengths=True)
    if git(template, "status", "--porcelain", "--untracked-files=no").strip():
        print(f"note: the template has uncommitted changes; the copy is made from {commit[:12]}")
    for path in rendering.left_out:
        print(f"note: left out {path} (a binary file that names the template)")
    provenance = Provenance(str(template), commit, template_name(tree).label, answers)
    with terminate_as_exit():
        build(dest, rendering.files, provenance)
    kind = "bare project" if bare else "project"
    print(f"made {kind} {answers.name.label} in {dest} from {template} at {commit[:12]}")
    print(f"next: cd {dest} && uv run invoke gates")
    return 0


def aside_prefix(dest: Path) -> str:
    """The name of a `new`'s work dir beside `dest` starts with this and goes on with its PID."""
    return f".{dest.name}.new-"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_asides(dest: Path) -> None:
    """Remove what a `new` for the same DEST left when it was killed (SIGKILL runs no cleanup):
    a work dir beside DEST whose process is gone."""
    prefix = aside_prefix(dest)
    for path in dest.parent.glob(f"{glob.escape(prefix)}*"):
        pid = path.name.removeprefix(prefix).split("-", 1)[0]
        if path.is_dir() and not path.is_symlink() and pid.isdigit() and not alive(int(pid)):
            print(f"note: removing {path}, left by a `new` that was killed")
            shutil.rmtree(path, ignore_errors=True)


def build(dest: Path, files: Tree, provenance: Provenance) -> None:
    """Write the project aside, lock it, commit it, then move it to `dest` in one rename."""
    umask = current_umask()
    sweep_asides(dest)
    aside = Path(tempfile.mkdtemp(prefix=f"{aside_prefix(dest)}{os.getpid()}-", dir=dest.parent))
    try:
        aside.chmod(0o777 & ~umask)
        write_tree(aside, files, umask)
        (aside / PROVENANCE).write_text(provenance.render())
        (aside / ".gates").mkdir()
        run(aside, "uv", "lock", "--quiet")
        run(aside, "git", "init", "--quiet")
        run(aside, "git", "add", "--all")
        short = provenance.commit[:12]
        message = f"Made from a template at {short} (see {PROVENANCE})"
        run(aside, "git", *git_identity(aside), "commit", "--quiet", "-m", message)
        if dest.is_dir():
            dest.rmdir()  # empty, as checked
        aside.rename(dest)
    except BaseException:
        shutil.rmtree(aside, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------- update
def template_repository(source: str, stack: contextlib.ExitStack) -> Path:
    """The template's git repository: its local checkout, or a bare clone of its URL."""
    path = Path(source)
    if path.is_dir():
        return path
    clone = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="template-")))
    run(clone, "git", "clone", "--quiet", "--bare", source, str(clone / "repo"))
    return clone / "repo"


def update(to: str) -> int:
    root = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").decode().strip())
    provenance = Provenance.read(root)
    if git(root, "status", "--porcelain").strip():
        raise TemplateError(
            "the working tree has uncommitted changes: commit or stash them first, so nothing "
            "of yours is at risk"
        )
    with contextlib.ExitStack() as stack:
        repo = template_repository(provenance.source, stack)
        target = git(repo, "rev-parse", "--verify", f"{to or 'HEAD'}^{{commit}}").decode().strip()
        if target == provenance.commit:
            print(f"already at the template's {target[:12]}: nothing to bring in")
            return 0
        old = render_copy(read_tree(repo, provenance.commit), provenance.answers).files
        new = render_copy(read_tree(repo, target), provenance.answers).files
    labels = ("this project", f"template {provenance.commit[:12]}", f"template {target[:12]}")
    with terminate_as_exit():
        outcome = merge_trees(root, old, new, labels, skipped=frozenset({LOCK}))
        moved = Provenance(provenance.source, target, provenance.template, provenance.answers)
        (root / PROVENANCE).write_text(moved.render())
        unresolved = [path for path, _ in outcome.conflicts if Path(path).name == "pyproject.toml"]
        if not unresolved:
            run(root, "uv", "lock", "--quiet")
    brought = len(outcome.changed)
    print(f"template {provenance.commit[:12]} → {target[:12]}; files brought in: {brought}")
    for line in outcome.changed:
        print(f"  {line}")
    if unresolved:
        print(f"  {LOCK} not locked again: resolve {', '.join(unresolved)}, then run `uv lock`")
    print("review with `git status` and `git diff`; undo with `git reset --hard && git clean -fd`")
    if outcome.conflicts:
        print(f"{len(outcome.conflicts)} conflicts to resolve before committing:")
        for path, why in outcome.conflicts:
            print(f"  {path}: {why}")
        return CONFLICTS
    return 0


# ------------------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="template", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new", help="make a project from this template")
    make.add_argument("dest", help="the new project's directory (new, or empty)")
    make.add_argument("--name", required=True, help="the project's name, e.g. acme or acme-corp")
    make.add_argument("--bare", action="store_true", help="without the example service")
    make.add_argument("--description", default="", help="the project's one-line description")
    later = commands.add_parser("update", help="bring in what changed in the template since")
    later.add_argument("--to", default="", help="template commit to update to (default: newest)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "new":
            return new(args.dest, args.name, args.bare, args.description)
        return update(args.to)
    except TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main())
