"""A fake OSV service: the requests of OSV's documented API (google.github.io/osv.dev/api/) that
`uv audit` makes, answered from a few advisory records on disk instead of osv.dev.

- `POST /v1/querybatch` {"queries": [{"package": {"name", "ecosystem"}, "version"}…]} →
  {"results": [{"vulns": [{"id", "modified"}…]} or {} per query, in order]}
- `POST /v1/query` (one such query) → {"vulns": [whole records]} or {}
- `GET /v1/vulns/{id}` → the whole record, or 404 {"code": 5, "message": "Bug not found."}

A record affects a version the way OSV decides it: the version is listed in `affected[].versions`,
or falls in an ECOSYSTEM range (`introduced` ≤ v < `fixed`, or ≤ `last_affected`), for the
package of that ecosystem (PyPI names compared normalized). It is a working stand-in, never the
real database: the verdicts it yields are the records' own, which come from OSV (see
fixtures/osv/README.md). Every request is kept in `requests`, so a test can say what uv asked.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

RECORDS = Path(__file__).parent / "fixtures" / "osv"


def normalized(name: str) -> str:
    """PEP 503: PyPI names compare lower-cased, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_range(version: Version, events: Sequence[Mapping[str, str]]) -> bool:
    """OSV's ECOSYSTEM range: each `introduced` opens an interval that `fixed` (exclusive) or
    `last_affected` (inclusive) closes; "0" is before every version."""
    start: Version | None = None
    for event in events:
        if "introduced" in event:
            value = event["introduced"]
            start = Version("0") if value == "0" else Version(value)
        elif start is not None and "fixed" in event:
            if start <= version < Version(event["fixed"]):
                return True
            start = None
        elif start is not None and "last_affected" in event:
            if start <= version <= Version(event["last_affected"]):
                return True
            start = None
    return start is not None and start <= version


def affects(record: Mapping[str, Any], ecosystem: str, name: str, version: str) -> bool:
    """Whether the advisory record affects that package version."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    for affected in record.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != ecosystem or normalized(package.get("name", "")) != (
            normalized(name)
        ):
            continue
        if version in affected.get("versions", []):
            return True
        ranges = [r for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM"]
        if any(_in_range(parsed, r.get("events", [])) for r in ranges):
            return True
    return False


class FakeOsv:
    """The records and what was asked of them; `serve` puts them behind HTTP."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = {str(r["id"]): r for r in records}
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, JSON body or None)

    @classmethod
    def from_dir(cls, directory: Path = RECORDS) -> FakeOsv:
        return cls([json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))])

    def matching(self, query: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The records that affect one query's package version (ValueError: a bad query)."""
        package = query.get("package")
        version = query.get("version")
        if not isinstance(package, dict) or not isinstance(version, str):
            raise ValueError("a query needs package {name, ecosystem} and version")
        name, ecosystem = package.get("name"), package.get("ecosystem")
        if not isinstance(name, str) or not isinstance(ecosystem, str):
            raise ValueError("a query's package needs name and ecosystem")
        return [r for r in self.records.values() if affects(r, ecosystem, name, version)]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Mapping[str, Any]]:
        """The status and JSON body OSV's API gives for one request."""
        self.requests.append((method, path, body))
        try:
            if method == "POST" and path == "/v1/querybatch":
                queries = body["queries"] if isinstance(body, dict) else None
                if not isinstance(queries, list):
                    raise ValueError("querybatch needs {queries: [...]}")
                return 200, {"results": [self._ids(self.matching(q)) for q in queries]}
            if method == "POST" and path == "/v1/query":
                found = self.matching(body if isinstance(body, dict) else {})
                return 200, {"vulns": found} if found else {}
        except (ValueError, KeyError, TypeError, InvalidVersion) as bad:
            return 400, {"code": 3, "message": str(bad)}
        if method == "GET" and path.startswith("/v1/vulns/"):
            record = self.records.get(path.removeprefix("/v1/vulns/"))
            return (200, record) if record else (404, {"code": 5, "message": "Bug not found."})
        return 404, {"code": 5, "message": f"no such endpoint: {method} {path}"}

    @staticmethod
    def _ids(found: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        """querybatch answers ids and modification times only; uv then GETs each record."""
        if not found:
            return {}
        return {"vulns": [{"id": r["id"], "modified": r["modified"]} for r in found]}

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free local port until the block ends; yields the base URL (with a slash)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                status, payload = fake.answer(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the requests are kept in fake.requests

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="fake-osv", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
