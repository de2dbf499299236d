#!/usr/bin/env python3
"""A fake `qemu-img` for the qemu provider's unit tests. It is NOT qemu-img: an "image" is a JSON
file {"size", "backing", "snapshots", "data"} and only the subcommands and flags the provider
uses exist (create, info, snapshot -c/-a/-d, convert)."""

from __future__ import annotations

# Only json and sys: the provider runs this script dozens of times per test run, and pathlib
# and typing would add a third to each start.
import json
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


def read(path: str) -> str:
    with open(path) as handle:  # noqa: PTH123
        return handle.read()


def write(path: str, text: str) -> None:
    with open(path, "w") as handle:  # noqa: PTH123
        handle.write(text)


def load(path: str) -> dict[str, Any]:
    try:
        image: dict[str, Any] = json.loads(read(path))
        return image
    except FileNotFoundError:
        sys.exit(f"qemu-img: Could not open '{path}': No such file or directory")


def main(args: list[str]) -> None:
    command, rest = args[0], [a for a in args[1:] if a not in {"-q", "-U", "--output=json"}]
    flags: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] in {"-f", "-F", "-b", "-B", "-O", "-c", "-a", "-d"}:
            flags[rest[i]] = rest[i + 1]
            i += 2
        else:
            positional.append(rest[i])
            i += 1
    if command == "create":
        size = positional[1] if len(positional) > 1 else "inherit"
        image: dict[str, Any] = {
            "size": size,
            "backing": flags.get("-b"),
            "snapshots": {},
            "data": "",
        }
        write(positional[0], json.dumps(image))
    elif command == "info":
        image = load(positional[0])
        print(json.dumps({"snapshots": [{"name": n} for n in image["snapshots"]]}))
    elif command == "snapshot":
        path = positional[0]
        image = load(path)
        snapshots: dict[str, str] = image["snapshots"]
        if "-c" in flags:
            snapshots[flags["-c"]] = str(image["data"])
        elif "-a" in flags:
            image["data"] = snapshots[flags["-a"]]
        elif "-d" in flags:
            if flags["-d"] not in snapshots:
                sys.exit(f"qemu-img: Could not delete snapshot '{flags['-d']}'")
            del snapshots[flags["-d"]]
        write(path, json.dumps(image))
    elif command == "convert":
        source = load(positional[0])
        copy = {
            "size": source["size"],
            "backing": flags.get("-B"),
            "snapshots": {},
            "data": source["data"],
        }
        write(positional[1], json.dumps(copy))
    else:
        sys.exit(f"fake qemu-img: unsupported command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
