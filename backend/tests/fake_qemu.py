#!/usr/bin/env python3
"""A fake `qemu-system-x86_64` for the qemu provider's unit tests. It is NOT QEMU and boots
nothing: it daemonizes like `qemu -daemonize`, writes the pidfile, prints the readiness line to
the serial "log", answers the QMP commands the provider uses on the QMP socket (greeting,
`DEVICE_DELETED` events included) and runs exec requests of the control console with the
host's /bin/sh. Tests steer it with HANGAR_FAKE_QEMU_MODE:

  panic          the "guest" prints `Kernel panic` instead of the readiness line
  no-unplug      device_del is accepted but DEVICE_DELETED never comes (guest ignores it)
  stubborn       guest poweroff and `quit` are ignored; only a signal ends it
"""

from __future__ import annotations

import sys

VERSION = "QEMU emulator version 7.2.0 (fake)"

if __name__ == "__main__" and sys.argv[1:] == ["--version"]:
    # The provider asks once per instance: answered before the imports below, asyncio most of all,
    # which would make this script's start three times as long.
    print(VERSION)
    sys.exit(0)

import asyncio  # noqa: E402
import base64  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

MODE = os.environ.get("HANGAR_FAKE_QEMU_MODE", "")
USERNET = (
    "Hub -1 (net0):\r\n"
    "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
    "  TCP[HOST_FORWARD]  13       127.0.0.1 40080       10.0.2.15    80     0     0\r\n"
)


def options(argv: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for flag, value in itertools.pairwise(argv):
        if flag.startswith("-") and not value.startswith("-"):
            found.setdefault(flag, []).append(value)
    return found


def keyvals(text: str) -> dict[str, str]:
    text = text.replace(",,", "\0")
    pairs = [part.replace("\0", ",") for part in text.split(",")]
    return {p.split("=", 1)[0]: p.split("=", 1)[1] if "=" in p else "" for p in pairs}


async def messages(reader: asyncio.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """JSON objects as they arrive: QMP clients need not end a message with a newline."""
    decoder, buffer = json.JSONDecoder(), ""
    while chunk := await reader.read(4096):
        buffer += chunk.decode()
        while buffer.strip():
            try:
                message, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                break
            buffer = buffer.lstrip()[end:]
            yield message


class Fake:
    def __init__(self, argv: list[str]) -> None:
        self.opts = options(argv)
        chardevs = [keyvals(c) for c in self.opts.get("-chardev", [])]
        self.paths = {c["id"]: Path(c["path"]) for c in chardevs}
        self.devices: set[str] = set()
        self.nodes: set[str] = set()
        self.unplugging: set[str] = set()
        append = self.opts.get("-append", [""])[0]
        self.name = next(
            (w.split("=", 1)[1] for w in append.split() if w.startswith("hangar.name=")), "?"
        )

    def serial(self, line: str) -> None:
        with self.paths["serial0"].open("a") as handle:
            handle.write(line + "\n")

    async def qmp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(message: dict[str, object]) -> None:
            writer.write(json.dumps(message).encode() + b"\r\n")

        send(
            {
                "QMP": {
                    "version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"},
                    "capabilities": [],
                }
            }
        )
        async for request in messages(reader):
            command, args = request.get("execute"), request.get("arguments", {})
            answer: dict[str, object] = {"return": {}}
            events: list[dict[str, object]] = []
            if command == "human-monitor-command":
                answer["return"] = USERNET
            elif command == "blockdev-add":
                self.nodes.add(args["node-name"])
            elif command == "device_add":
                if args["id"] in self.devices:
                    answer = {
                        "error": {
                            "class": "GenericError",
                            "desc": f"Duplicate device ID '{args['id']}'",
                        }
                    }
                self.devices.add(args["id"])
            elif command == "device_del":
                if args["id"] in self.unplugging:
                    answer = {
                        "error": {
                            "class": "GenericError",
                            "desc": f"Device {args['id']} is already in the process of unplug",
                        }
                    }
                elif MODE == "no-unplug":
                    self.unplugging.add(args["id"])
                else:
                    self.devices.discard(args["id"])
                    events.append(
                        {
                            "event": "DEVICE_DELETED",
                            "data": {"device": args["id"], "path": "/x"},
                            "timestamp": {"seconds": 0, "microseconds": 0},
                        }
                    )
            elif command == "blockdev-del":
                self.nodes.discard(args["node-name"])
            if "id" in request:
                answer["id"] = request["id"]
            send(answer)
            for event in events:
                send(event)
            await writer.drain()
            if command in {"quit", "system_powerdown"} and MODE != "stubborn":
                os._exit(0)

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request_id, limit, script = line.decode().split()
            command = base64.b64decode(script).decode()
            if "poweroff" in command:
                if MODE != "stubborn":
                    os._exit(0)
                continue
            shell = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            output, _ = await asyncio.wait_for(shell.communicate(), int(limit))
            body = base64.encodebytes(output).decode()
            end = f"HANGAR-END {request_id} {shell.returncode}"
            writer.write(f"HANGAR-BEGIN {request_id}\r\n{body}{end}\r\n".encode())
            await writer.drain()

    async def run(self, ready: int) -> None:
        await asyncio.start_unix_server(self.qmp, path=str(self.paths["qmp"]))
        await asyncio.start_unix_server(self.control, path=str(self.paths["control"]))
        pidfile = self.opts["-pidfile"][0].replace(",,", ",")
        with open(pidfile, "w") as handle:  # noqa: ASYNC230,PTH123 -- once, before serving
            handle.write(f"{os.getpid()}\n")
        os.write(ready, b"ok")
        os.close(ready)
        await asyncio.sleep(0.05)
        self.serial(
            "Kernel panic - not syncing: fake" if MODE == "panic" else f"HANGAR-READY {self.name}"
        )
        await asyncio.Event().wait()


def main() -> None:
    argv = sys.argv  # `--version` was answered at the top
    kernel = options(argv).get("-kernel", [None])[0]
    if kernel is not None and Path(kernel).read_bytes()[:4] != b"\x7fELF":
        sys.stderr.write("qemu: invalid kernel header\n")
        sys.exit(1)
    fake = Fake(argv)
    fake.paths["serial0"].write_text("")
    if "-daemonize" not in argv:  # the accelerator probe: "boot", say so, power off
        if "hangar.probe=1" in " ".join(argv) and MODE != "panic":
            fake.serial("HANGAR-PROBE-OK")
        sys.exit(0)
    read_end, write_end = os.pipe()
    if os.fork() != 0:  # the launcher: exit 0 once the daemon is set up, like -daemonize
        os.close(write_end)
        sys.exit(0 if os.read(read_end, 2) == b"ok" else 1)
    os.close(read_end)
    os.setsid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    asyncio.run(fake.run(write_end))


if __name__ == "__main__":
    main()
