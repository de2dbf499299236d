"""What a copy of the template is: the template's tracked files at one commit, renamed to the
project's name, and for `--bare` the gate engine and test kit without the example service.

Rendering is a pure function of (the template's files at a commit, the answers): `new` writes
it, and `template-update` renders two commits the same way and merges their difference into the
project. Standard library only: this module travels into every copy.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# ------------------------------------------------------------------------------- the renames
# Each form of a name (a `Name` attribute) and what follows it where that form of the template's
# name is replaced by the same form of the project's. With the template `hangar` and the name
# `acme-corp`: `hangar-test-1` → `acme-corp-test-1` (names and labels keep their dashes),
# `hangar.cli`, `backend/src/hangar` → `acme_corp.cli`, `backend/src/acme_corp` (the package,
# its modules and CLI, identifiers, paths), `HangarError` → `AcmeCorpError` (titles, classes),
# `HANGAR_DATA_DIR` → `ACME_CORP_DATA_DIR` (the environment prefix). Longest first, one pass.
FORMS: tuple[tuple[str, str], ...] = (
    ("label", "-"),
    ("package", ""),
    ("label", ""),
    ("title", ""),
    ("upper", ""),
)

# ------------------------------------------------------------------- what a copy never gets
# The template's own machinery for copies, which a copy does not need to update itself: the bare
# variant's files, the tests that make copies, and a provenance file (a template that is a copy).
NEVER_COPIED = ("tools/template/bare/", "integration/template/", ".template.toml")
PROVENANCE = ".template.toml"

# ----------------------------------------------------------------------------- --bare
# A bare copy keeps these of the template's files (a path, or a folder ending in `/`): the gate
# engine, the test kit's parts that need no example service, the runners, CI, the docs of the
# engine and of this template ...
BARE_KEEPS = (
    ".ci/",
    ".github/",
    ".gitignore",
    "conftest.py",
    "noxfile.py",
    "tasks.py",
    "uv.lock",
    "gates/",
    "testkit/src/testkit/backstop.py",
    "testkit/src/testkit/bench.py",
    "testkit/src/testkit/ci.py",
    "testkit/src/testkit/postgres.py",
    "testkit/src/testkit/reaper.py",
    "testkit/src/testkit/runs.py",
    "testkit/src/testkit/waiting.py",
    "testkit/src/testkit/py.typed",
    "testkit/tests/test_backstop.py",
    "testkit/tests/test_ci.py",
    "testkit/tests/test_reaper.py",
    "testkit/tests/test_runs.py",
    "testkit/tests/test_waiting.py",
    "e2e/__init__.py",
    "e2e/browser.py",
    "docs/gates.md",
    "docs/report.md",
    "docs/template.md",
    "tools/",
)
# ... cuts these files where a line starts so (the example service's tasks) ...
BARE_CUTS = {"tasks.py": "# ---- The example service's tasks"}
# ... and adds every file under this folder at its place: its own README, pyproject.toml, docs
# index and a minimal package with one test per tier (they win over a kept file).
BARE_FILES = "tools/template/bare/"

# --description replaces the first of these lines (its value quoted as JSON, which TOML and YAML
# read alike), and becomes the README's first paragraph.
DESCRIBED = {
    "pyproject.toml": (re.compile(r'^description = ".*"$', re.MULTILINE), "description = {}"),
    "mkdocs.yml": (re.compile(r"^site_description: .*$", re.MULTILINE), "site_description: {}"),
}
README = "README.md"

EXECUTABLE = "100755"
SYMLINK = "120000"


class TemplateError(Exception):
    """A bad answer or a template that cannot be read; the message is one line for a person."""


# ---------------------------------------------------------------------------------- names
NAME_RULE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,31}$")
NAME_ALLOWED = (
    "2 to 32 lowercase letters, digits and single dashes, starting with a letter and ending with "
    "a letter or digit (a DNS label; its Python package is the same with _ for -)"
)


@dataclass(frozen=True)
class Name:
    """A project's name in each of its forms: `acme-corp`, `acme_corp`, `AcmeCorp`, `ACME_CORP`."""

    label: str

    @property
    def package(self) -> str:
        return self.label.replace("-", "_")

    @property
    def title(self) -> str:
        return "".join(part.capitalize() for part in self.label.split("-"))

    @property
    def upper(self) -> str:
        return self.package.upper()

    @classmethod
    def parse(cls, text: str, taken: frozenset[str] = frozenset()) -> Name:
        """The name, or TemplateError saying what is allowed. `taken`: the distributions of the
        template's lock (its own packages and their dependencies), which a name may not shadow."""
        if not NAME_RULE.match(text):
            raise TemplateError(f"--name {text!r} is not allowed: use {NAME_ALLOWED}")
        name = cls(text)
        if keyword.iskeyword(name.package) or name.package in sys.stdlib_module_names:
            raise TemplateError(
                f"--name {text!r} is not allowed: `{name.package}` is a Python keyword or a "
                "module of the standard library"
            )
        if name.label in taken:
            raise TemplateError(
                f"--name {text!r} is not allowed: the template already has a package "
                f"`{name.label}` (itself or a dependency); choose another name"
            )
        return name


def renames(template: Name, project: Name) -> dict[str, str]:
    """Each form of the template's name → the same form of the project's (see FORMS)."""
    table: dict[str, str] = {}
    for form, suffix in FORMS:
        table.setdefault(getattr(template, form) + suffix, getattr(project, form) + suffix)
    return table


class Renamer:
    """Replaces every form of one name by the same form of another, in paths and text."""

    def __init__(self, template: Name, project: Name) -> None:
        self.table = renames(template, project)
        alternatives = sorted(self.table, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(form) for form in alternatives))
        self.template = template

    def text(self, text: str) -> str:
        return self.pattern.sub(lambda match: self.table[match.group()], text)

    def names_template(self, data: bytes) -> bool:
        """Whether `data` still names the template, in any letter case."""
        return self.template.label.encode() in data.lower()


# ---------------------------------------------------------------------- the template's files
@dataclass(frozen=True)
class File:
    """A file of a tree: its git mode (100644, 100755 or 120000) and its bytes."""

    mode: str
    data: bytes


Tree = dict[str, File]


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    """Run git in `repo`; a failure raises TemplateError with git's own words."""
    result = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        words = result.stderr.decode(errors="replace").strip().splitlines()
        raise TemplateError(f"git {' '.join(args)}: {words[-1] if words else 'failed'}")
    return result.stdout


def read_tree(repo: Path, commit: str) -> Tree:
    """Every file of `commit` in the git repository `repo`, by path (submodules left out)."""
    entries: list[tuple[str, str, str]] = []
    for record in git(repo, "ls-tree", "-r", "-z", "--full-tree", commit).split(b"\0"):
        if not record:
            continue
        meta, _, path = record.decode().partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob":
            entries.append((path, mode, sha))
    batch = git(repo, "cat-file", "--batch", data="".join(f"{s}\n" for _, _, s in entries).encode())
    tree: Tree = {}
    offset = 0
    for path, mode, _ in entries:
        header_end = batch.index(b"\n", offset)
        size = int(batch[offset:header_end].split()[2])
        start = header_end + 1
        tree[path] = File(mode, batch[start : start + size])
        offset = start + size + 1
    return tree


def template_name(tree: Tree) -> Name:
    """The template's own name, from `[tool.template] name` of its pyproject.toml."""
    try:
        table = tomllib.loads(tree["pyproject.toml"].data.decode())["tool"]["template"]
        return Name(table["name"])
    except (KeyError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise TemplateError(
            "this tree is no template: pyproject.toml has no [tool.template] name"
        ) from None


def taken_names(tree: Tree) -> frozenset[str]:
    """The distributions of the template's uv.lock, in their normalized (dashed) form."""
    if "uv.lock" not in tree:
        return frozenset()
    lock = tomllib.loads(tree["uv.lock"].data.decode())
    return frozenset(
        re.sub(r"[-_.]+", "-", package["name"]).lower() for package in lock.get("package", [])
    )


# --------------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class Answers:
    """What `new` was asked: the project's name, whether bare, its one-line description."""

    name: Name
    bare: bool = False
    description: str = ""


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


def _bare(tree: Tree) -> Tree:
    kept = {path: file for path, file in tree.items() if _under(path, BARE_KEEPS)}
    for path, marker in BARE_CUTS.items():
        if path in kept:
            text = kept[path].data.decode()
            start = text.find(f"\n{marker}")
            if start < 0:
                raise TemplateError(f"{path}: the line {marker!r} that --bare cuts at is missing")
            kept[path] = File(kept[path].mode, text[: start + 1].rstrip("\n").encode() + b"\n")
    overlay = {p.removeprefix(BARE_FILES): f for p, f in tree.items() if p.startswith(BARE_FILES)}
    if not overlay:
        raise TemplateError(f"this template has no {BARE_FILES} (its --bare files)")
    return kept | overlay


def _describe(path: str, text: str, description: str) -> str:
    if path in DESCRIBED:
        pattern, line = DESCRIBED[path]
        value = line.format(json.dumps(description, ensure_ascii=False))
        return pattern.sub(lambda _: value, text, count=1)
    if path == README:
        title, newline, rest = text.partition("\n")
        return f"{title}{newline}\n{description}\n{rest}"
    return text


@dataclass
class Rendering:
    """A copy's files, and the template's files it left out (binary files naming the template)."""

    files: Tree
    left_out: list[str]


def render(tree: Tree, answers: Answers) -> Rendering:
    """The copy's files for `answers`, from the template's files `tree` (see the module doc)."""
    renamer = Renamer(template_name(tree), answers.name)
    selected = _bare(tree) if answers.bare else tree
    files: Tree = {}
    left_out: list[str] = []
    for path, file in sorted(selected.items()):
        if _under(path, NEVER_COPIED):
            continue
        try:
            text = file.data.decode()
        except UnicodeDecodeError:
            text = None
        if text is None or "\0" in text:
            if renamer.names_template(file.data):
                left_out.append(path)
            else:
                files[renamer.text(path)] = file
            continue
        new_path = renamer.text(path)
        text = renamer.text(text)
        if answers.description:
            text = _describe(new_path, text, answers.description)
        files[new_path] = File(file.mode, text.encode())
    return Rendering(files, left_out)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_tree(root: Path, files: Mapping[str, File], umask: int) -> None:
    """Write `files` under `root` (which exists), with their modes."""
    for path, file in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, file, umask)


def write_file(target: Path, file: File, umask: int) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    if file.mode == SYMLINK:
        target.symlink_to(file.data.decode())
        return
    target.write_bytes(file.data)
    target.chmod((0o777 if file.mode == EXECUTABLE else 0o666) & ~umask)
