"""A minimal writer of `newc` cpio archives, the format the Linux kernel unpacks as an initramfs.

Written in Python so the image build needs no `cpio` tool and is byte-for-byte reproducible:
every entry has mtime 0, uid/gid 0 and inode numbers in insertion order.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import BinaryIO

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member; `path` is relative to the archive root, without a leading slash."""

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def file(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, mode: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | mode, b"", (major, minor))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, entry: Entry, name: bytes) -> bytes:
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
        0,  # mtime: fixed, so equal inputs give equal archives
        len(entry.data),
        0,  # devmajor
        0,  # devminor
        entry.rdev[0],
        entry.rdev[1],
        len(name) + 1,
        0,  # check (unused by newc)
    )
    return _MAGIC + b"".join(b"%08X" % value for value in fields)


def write(out: BinaryIO, entries: list[Entry]) -> None:
    """Write `entries` (parents before children) and the trailer to `out`."""
    for ino, entry in enumerate([*entries, Entry(_TRAILER, 0)], start=1):
        if entry.path.startswith("/") or not entry.path:
            raise ValueError(f"cpio member path must be relative and non-empty: {entry.path!r}")
        name = entry.path.encode()
        header = _header(ino if entry.path != _TRAILER else 0, entry, name)
        out.write(header + name + b"\0")
        out.write(_pad(len(header) + len(name) + 1))
        out.write(entry.data)
        out.write(_pad(len(entry.data)))
