"""Framing of exec output, the serial-log wait, `info usernet` parsing."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest

from hangar.providers.base import ExecResult
from hangar.providers.qemu import console, monitor
from hangar.providers.qemu.console import FrameError, FrameParser


def frame(request_id: str, output: bytes, status: int) -> list[str]:
    encoded = base64.encodebytes(output).decode().splitlines()
    return [
        f"HANGAR-BEGIN {request_id}\r\n",
        *(f"{line}\r\n" for line in encoded),
        f"HANGAR-END {request_id} {status}\r\n",
    ]


def test_request_line_carries_id_timeout_and_base64_script() -> None:
    line = console.encode_request("abc123", "echo 'hi there'; exit 3", 7.9)
    request_id, limit, script = line.decode().split()
    assert (request_id, limit) == ("abc123", "7")
    assert base64.b64decode(script).decode() == "echo 'hi there'; exit 3"
    assert console.encode_request("x", "true", 0.2).split()[1] == b"1"  # at least a second


def test_parser_returns_output_and_status_of_its_own_frame() -> None:
    parser = FrameParser("id2")
    lines = [
        "boot noise\n",
        *frame("id1", b"late answer to an abandoned request\n", 0),  # skipped: not ours
        *frame("id2", b"line one\nHANGAR-END id2 0\n\x00\xffbin", 5),
    ]
    results = [parser.feed(line) for line in lines]
    assert results[-1] == ExecResult(5, "line one\nHANGAR-END id2 0\n\x00\ufffdbin")
    assert all(result is None for result in results[:-1])


def test_parser_handles_empty_output() -> None:
    parser = FrameParser("e")
    parser.feed("HANGAR-BEGIN e\n")
    assert parser.feed("HANGAR-END e 0\n") == ExecResult(0, "")


@pytest.mark.parametrize("end", ["HANGAR-END id 0 extra", "HANGAR-END id zero"])
def test_parser_rejects_a_malformed_end(end: str) -> None:
    parser = FrameParser("id")
    parser.feed("HANGAR-BEGIN id")
    with pytest.raises(FrameError, match="malformed"):
        parser.feed(end)


def test_parser_rejects_bad_base64() -> None:
    parser = FrameParser("id")
    parser.feed("HANGAR-BEGIN id")
    parser.feed("!!!not base64")
    with pytest.raises(FrameError, match="base64"):
        parser.feed("HANGAR-END id 0")


def test_end_without_begin_is_ignored() -> None:
    parser = FrameParser("id")
    assert parser.feed("HANGAR-END id 0") is None


def test_new_request_ids_are_distinct_and_alphanumeric() -> None:
    ids = {console.new_request_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]+", i) for i in ids)


USERNET = """Hub -1 (net0):
  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
  TCP[HOST_FORWARD]  14       127.0.0.1 42913       10.0.2.15    22     0     0
  TCP[HOST_FORWARD]  13       127.0.0.1 46543       10.0.2.15    80     0     0
  TCP[ESTABLISHED]   30       127.0.0.1 50000       10.0.2.15    80     0     0
"""


def test_usernet_parsing_finds_the_forward_to_port_80() -> None:
    assert monitor.parse_usernet(USERNET) == 46543
    assert monitor.parse_usernet(USERNET, guest_port=22) == 42913
    assert monitor.parse_usernet(USERNET, guest_port=443) is None
    assert monitor.parse_usernet("") is None


def wait(log: Path, alive: bool = True, within: float = 1.0) -> console.ConsoleMatch:
    return asyncio.run(
        console.wait_for_console(
            log,
            re.compile("HANGAR-READY"),
            re.compile("Kernel panic|HANGAR-FAILED"),
            within,
            lambda: alive,
        )
    )


def test_console_wait_sees_readiness(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text("booting\nHANGAR-READY web-1\n")
    assert wait(log) == console.ConsoleMatch(True, "HANGAR-READY web-1")


def test_console_wait_reports_failure_pattern_first(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text("Kernel panic - not syncing: VFS\nHANGAR-READY\n")
    match = wait(log)
    assert not match.ready
    assert "Kernel panic" in match.line


def test_console_wait_notices_a_dead_process_and_a_deadline(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    assert wait(log, alive=False).line == "QEMU exited before the guest was ready"
    log.write_text("still booting")  # no newline: an incomplete line never matches
    assert "not ready within" in wait(log, within=0.1).line


def test_tail_is_bounded_and_tolerates_a_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    assert console.tail(log, 5) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert console.tail(log, 2) == "line 98\nline 99"
