"""The API keeps its OpenAPI contract under generated input: schemathesis, every check, live.

`st run` reads GET /api/v1/openapi.json from a live backend and runs all its phases (the schema's
examples, coverage of each constraint's edges and of unsupported methods, random fuzzing and
stateful chains along the links it infers: create -> get -> act -> delete) with every check, once
per kind of caller: nobody signed in, a viewer and the admin, each with an API token minted for the
run (hooks.py keeps the run from revoking it). A run passes with no server error and no failed
check; a failure prints the seed and the commands that reproduce it.

Left out: GET /api/v1/events, the SSE stream, which never ends by itself (the unit tier tests it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.server import LiveServer, User

from .conftest import REQUESTS, SEED_ENV
from .hooks import PROTECTED_TOKENS_ENV

ROOT = Path(__file__).parents[1]
HOOKS = Path(__file__).with_name("hooks.py")
KEPT = ROOT / "test-results" / "fuzz"  # a failed caller's HAR and JUnit files (CI keeps them)
NEVER_ENDS = ["/api/v1/events"]  # the SSE stream
RUN_TIMEOUT_S = 240.0  # a bound on one caller's run; it takes well under a minute here


@dataclass(frozen=True)
class Caller:
    """Who calls, how many cases each operation gets, and the fewest requests that must go out."""

    name: str
    max_examples: int
    min_requests: int


# Together at least 1,000 requests (a run here sends about 4,000: the coverage phase alone sends
# some 900 per caller); the admin gets the most cases, as every mutation reaches its handler.
CALLERS = [
    Caller("anonymous", max_examples=10, min_requests=300),
    Caller("viewer", max_examples=10, min_requests=300),
    Caller("admin", max_examples=40, min_requests=600),
]


@dataclass(frozen=True)
class FuzzRun:
    """One `st run` against `url` as one caller."""

    url: str
    seed: int
    caller: Caller
    reports: Path

    @property
    def har(self) -> Path:
        return self.reports / f"{self.caller.name}.har.json"

    def generation(self) -> list[str]:
        """What decides the requests: with the same seed, the same ones go out."""
        argv = ["--checks", "all", "--seed", str(self.seed)]
        argv += ["--max-examples", str(self.caller.max_examples), "--workers", "1"]
        for path in NEVER_ENDS:
            argv += ["--exclude-path", path]
        # Reproduction is by seed: no example database carried from run to run.
        return [*argv, "--generation-database", "none", "--request-timeout", "10"]

    def argv(self, token: str | None) -> list[str]:
        st = Path(sys.executable).with_name("st")
        argv = [str(st) if st.exists() else "st", "run", f"{self.url}/api/v1/openapi.json"]
        argv += [*self.generation(), "--no-color"]
        argv += ["--report", "har,junit", "--report-dir", str(self.reports)]
        argv += ["--report-har-path", str(self.har)]
        if token is not None:
            argv += ["--header", f"Authorization: Bearer {token}"]
        return argv

    def reproduce(self) -> str:
        """What a person runs to see the same inputs again (the server's own ids will differ)."""
        schema = "http://127.0.0.1:8000/api/v1/openapi.json"
        command = f"SCHEMATHESIS_HOOKS={HOOKS.relative_to(ROOT)} "
        whose = ""
        if self.caller.name != "anonymous":
            command += f"{PROTECTED_TOKENS_ENV}=$TOKEN_ID "
            whose = f" ($TOKEN, $TOKEN_ID: an API token of a user with the {self.caller.name} role)"
        command += "uv run --group fuzz st run " + shlex.join([schema, *self.generation()])
        if self.caller.name != "anonymous":
            command += ' --header "Authorization: Bearer $TOKEN"'
        return (
            f"seed {self.seed}; the same inputs again:\n"
            f"  {SEED_ENV}={self.seed} uv run nox -s fuzz -- fuzz -k {self.caller.name}\n"
            f"or against `uv run invoke dev`{whose}:\n"
            f"  {command}"
        )


def mint_token(server: LiveServer, user: User, label: str) -> tuple[str, str]:
    """A new API token of `user`: (its id, its secret)."""
    with server.client(user) as client:
        made = client.ok("POST", "/tokens", json={"name": f"fuzz-{label}"})
    return made["id"], made["token"]


def entries(har: Path) -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads(har.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = data["log"]["entries"]
    return found


def path_of(entry: dict[str, Any]) -> str:
    return str(httpx.URL(entry["request"]["url"]).path)


def server_errors(found: Iterable[dict[str, Any]]) -> list[str]:
    return [
        f"{e['request']['method']} {path_of(e)} -> {e['response']['status']}"
        for e in found
        if e["response"]["status"] >= 500
    ]


MACHINE = re.compile(r"^/api/v1/machines/([^/]+)(/.*)?$")


def machine_chains(found: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """For each machine the run created, what it then did with it and the server accepted:
    `get`, `act` (an action or a sub-resource) and `delete`."""
    created: set[str] = set()
    done: dict[str, set[str]] = {}
    for entry in found:
        method, path, status = (
            entry["request"]["method"],
            path_of(entry),
            entry["response"]["status"],
        )
        if (method, path, status) == ("POST", "/api/v1/machines", 202):
            body = json.loads(entry["response"]["content"].get("text") or "{}")
            created.add(body["machine"]["id"])
            continue
        match = MACHINE.match(path)
        if match is None or match.group(1) not in created or status >= 300:
            continue
        step = "act" if match.group(2) else {"GET": "get", "DELETE": "delete"}.get(method)
        if step is not None:
            done.setdefault(match.group(1), set()).add(step)
    return done


def run_st(run: FuzzRun, token: tuple[str, str] | None, data_dir: Path) -> str:
    """`st run`; its output. The fuzzer carries the server's HANGAR_DATA_DIR, the run's tag, so
    the sweeper ends it too if this run is killed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HANGAR_")}
    env |= {"SCHEMATHESIS_HOOKS": str(HOOKS), "HANGAR_DATA_DIR": str(data_dir)}
    env[PROTECTED_TOKENS_ENV] = token[0] if token else ""
    run.reports.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        run.argv(token[1] if token else None),
        env=env,
        cwd=run.reports,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        kept = KEPT / run.caller.name
        shutil.copytree(run.reports, kept, dirs_exist_ok=True)
        pytest.fail(
            f"schemathesis found problems as the {run.caller.name} (exit {result.returncode}):\n"
            f"{output}\nEvery request and answer: {kept}\n{run.reproduce()}",
            pytrace=False,
        )
    return output


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
@pytest.mark.parametrize("caller", CALLERS, ids=[caller.name for caller in CALLERS])
def test_the_api_keeps_its_contract(
    caller: Caller, live_server: LiveServer, seed: int, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    users = {"admin": live_server.admin, "viewer": live_server.viewer}
    user = users.get(caller.name)
    token = mint_token(live_server, user, caller.name) if user is not None else None
    run = FuzzRun(live_server.url, seed, caller, tmp_path / "reports")

    run_st(run, token, live_server.data_dir)

    found = entries(run.har)
    pytestconfig.stash.setdefault(REQUESTS, {})[caller.name] = len(found)
    assert len(found) >= caller.min_requests, f"only {len(found)} requests\n{run.reproduce()}"
    assert server_errors(found) == [], run.reproduce()
    if token is not None:
        me = httpx.get(
            f"{live_server.url}/api/v1/auth/me",
            headers={"Authorization": f"Bearer {token[1]}"},
            timeout=10,
        )
        assert me.status_code == 200, f"the run's own token stopped working: {me.text}"
    if caller.name == "admin":
        chains = machine_chains(found)
        full = [m for m, steps in chains.items() if steps >= {"get", "act", "delete"}]
        assert full, f"no machine went create -> get -> act -> delete: {chains}"
