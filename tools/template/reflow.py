"""Bring renamed Python back into the shape its lint demands.

A new name sorts elsewhere among the imports and is longer or shorter than the template's, so
after the renames a copy's imports are sorted again and its code formatted by the ruff version
the template locks (so that a rendering stays a function of commit and answers), and a comment
or docstring line the longer name pushed past the line length is wrapped at a space. A line
still too long (a long string) makes the name too long for `new`, which says so.
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import tempfile
import tokenize
import tomllib
from pathlib import Path

from rendering import File, Rendering, TemplateError, Tree, write_tree

RUFF_FIXES = (("check", "--select", "I", "--fix"), ("format",))
RUFF_FORMAT = ("format",)
RUFF_LENGTH = ("check", "--select", "E501", "--output-format", "concise")
DEFAULT_LINE_LENGTH = 88  # ruff's own
# Tokens after which a string starts a statement of its own (a docstring, or a no-op).
STATEMENT_START = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}
SKIPPED = {tokenize.NL, tokenize.COMMENT}
# A line that is a single string literal, perhaps followed by `,` or closing brackets.
STRING_LINE = re.compile(
    r"""^(?P<indent>\s*)(?P<prefix>[rRuUfF]{0,2})(?P<q>["'])"""
    r"""(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)(?P<tail>[,)\]}]*)$"""
)


def ruff_version(tree: Tree) -> str:
    """The ruff version the template's uv.lock pins."""
    lock = tomllib.loads(tree["uv.lock"].data.decode()) if "uv.lock" in tree else {}
    for package in lock.get("package", []):
        if package["name"] == "ruff":
            return str(package["version"])
    raise TemplateError("the template's uv.lock pins no ruff, which shapes a copy's Python")


def line_length(tree: Tree) -> int:
    pyproject = tomllib.loads(tree["pyproject.toml"].data.decode())
    return int(pyproject.get("tool", {}).get("ruff", {}).get("line-length", DEFAULT_LINE_LENGTH))


def ruff(root: Path, version: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the given ruff version over `root` (uv fetches it once into its tool cache)."""
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    argv = ["uv", "tool", "run", "--quiet", "--from", f"ruff=={version}", "ruff"]
    return subprocess.run(
        [*argv, *args, "--no-cache", "--quiet", "."],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def _wrappable_rows(source: str) -> dict[int, str]:
    """Row → the prefix a wrapped part of it starts with: full-line comments (`<indent># `) and
    the rows of strings that are statements of their own (`<indent>`)."""
    rows: dict[int, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    significant = [t for t in tokens if t.type not in SKIPPED]
    for token in tokens:
        if token.type == tokenize.COMMENT and not token.line[: token.start[1]].strip():
            rows[token.start[0]] = token.line[: token.start[1]] + "# "
    for index, token in enumerate(significant[:-1]):
        before = significant[index - 1].type if index else tokenize.NEWLINE
        if (
            token.type == tokenize.STRING
            and before in STATEMENT_START
            and significant[index + 1].type in (tokenize.NEWLINE, tokenize.ENDMARKER)
        ):
            for row in range(token.start[0], token.end[0] + 1):
                rows[row] = " " * token.start[1]
    return rows


def _split_string(line: str, limit: int) -> tuple[str, str] | None:
    """A line that is one string literal (in brackets: a call's argument, a list's item), as two
    lines whose literals concatenate to the same string; None when no space allows it."""
    match = STRING_LINE.match(line)
    if match is None:
        return None
    indent, prefix, quote, body, tail = match.group("indent", "prefix", "q", "body", "tail")
    head = len(indent) + len(prefix) + 1
    depth, cut = 0, -1
    for index, char in enumerate(body):
        if "f" in prefix.lower() and char in "{}":
            depth += 1 if char == "{" else -1
        if char == " " and depth == 0 and head + index + 2 <= limit and body[index - 1] != "\\":
            cut = index
    if cut <= 0:
        return None
    first, second = body[: cut + 1], body[cut + 1 :]
    second_prefix = prefix if "{" in second or "}" in second else prefix.replace("f", "")
    return (
        f"{indent}{prefix}{quote}{first}{quote}",
        f"{indent}{second_prefix.replace('F', '')}{quote}{second}{quote}{tail}",
    )


def _same_code(before: str, after: str) -> bool:
    try:
        return ast.dump(ast.parse(before)) == ast.dump(ast.parse(after))
    except SyntaxError:
        return False


def wrap_long_lines(source: str, limit: int) -> str:
    """Wrap comment, docstring and string-literal lines longer than `limit` at a space (see the
    module doc); a string is split only where the code stays the same (its AST)."""
    lines = source.splitlines(keepends=True)
    if all(len(line.rstrip("\r\n")) <= limit for line in lines):
        return source
    try:
        rows = _wrappable_rows(source)
    except (tokenize.TokenError, SyntaxError):
        return source
    out: list[str] = []
    for row, line in enumerate(lines, start=1):
        text, ending = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")) :]
        prefix = rows.get(row)
        while prefix is not None and len(text) > limit:
            cut = text.rfind(" ", len(prefix) + 1, limit + 1)
            if cut < 0 or not text[:cut].strip() or text[:cut].strip() in ('"""', "'''", "#"):
                break
            out.append(text[:cut].rstrip() + "\n")
            text = prefix + text[cut + 1 :].lstrip()
        while prefix is None and len(text) > limit:
            split = _split_string(text, limit)
            rest = "".join(lines[row:])
            if split is None or not _same_code(
                "".join(out) + text + ending + rest,
                "".join(out) + split[0] + "\n" + split[1] + ending + rest,
            ):
                break
            out.append(split[0] + "\n")
            text = split[1]
        out.append(text + ending)
    return "".join(out)


def normalize(rendering: Rendering, tree: Tree, lengths: bool = False) -> None:
    """Shape the rendering's Python files in place (see the module doc); with `lengths`, a line
    that is still too long raises TemplateError naming it."""
    version, limit = ruff_version(tree), line_length(rendering.files)
    python = {p: f for p, f in rendering.files.items() if p.endswith((".py", "pyproject.toml"))}
    with tempfile.TemporaryDirectory(prefix="template-render-") as scratch:
        root = Path(scratch)
        write_tree(root, python, 0o022)
        for args in RUFF_FIXES:
            result = ruff(root, version, *args)
            if result.returncode != 0:
                words = (result.stderr or result.stdout).strip().splitlines()
                raise TemplateError(f"ruff {args[0]}: {words[-1] if words else 'failed'}")
        for path in python:
            if path.endswith(".py"):
                target = root / path
                target.write_text(wrap_long_lines(target.read_text(), limit))
        ruff(root, version, *RUFF_FORMAT)  # the wrapped strings laid out as ruff lays them out
        if lengths:
            result = ruff(root, version, *RUFF_LENGTH)
            too_long = [line for line in result.stdout.splitlines() if "E501" in line]
            if too_long:
                raise TemplateError(
                    f"the name makes {len(too_long)} lines longer than the lint allows (first: "
                    f"{too_long[0]}); choose a shorter name"
                )
        for path, file in python.items():
            rendering.files[path] = File(file.mode, (root / path).read_bytes())
