"""The fuzz tier's own parts, without a server: the token hook, the chains, the reproduction."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from schemathesis import Case, HookContext

from . import hooks
from .test_api_contract import CALLERS, FuzzRun, machine_chains, server_errors

OWN = "0123456789abcdef0123456789abcdef"


def call(method: str, token_id: str) -> dict[str, Any]:
    """The path parameters a DELETE of `token_id` goes out with, after the hook."""
    case = SimpleNamespace(method=method, path_parameters={"token_id": token_id})
    hooks.before_call(cast(HookContext, None), cast("Case[Any]", case), {})
    parameters: dict[str, Any] = case.path_parameters
    return parameters


def test_the_hook_never_lets_the_run_revoke_its_own_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hooks.PROTECTED_TOKENS_ENV, f"other,{OWN}")
    swapped = call("DELETE", OWN)["token_id"]
    assert swapped != OWN
    assert len(swapped) == 32
    assert call("DELETE", "someone-elses") == {"token_id": "someone-elses"}
    assert call("GET", OWN) == {"token_id": OWN}


def test_without_protected_tokens_the_hook_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(hooks.PROTECTED_TOKENS_ENV, raising=False)
    assert call("DELETE", OWN) == {"token_id": OWN}


def entry(method: str, path: str, status: int, body: object = None) -> dict[str, Any]:
    text = json.dumps(body) if body is not None else ""
    return {
        "request": {"method": method, "url": f"http://127.0.0.1:9/api/v1{path}"},
        "response": {"status": status, "content": {"text": text}},
    }


def test_a_chain_counts_only_accepted_steps_on_machines_the_run_created() -> None:
    found = [
        entry("POST", "/machines", 202, {"machine": {"id": "m1"}}),
        entry("GET", "/machines/m1", 200),
        entry("POST", "/machines/m1/stop", 409),  # refused: not a step
        entry("POST", "/machines/m1/snapshots", 202),
        entry("DELETE", "/machines/m1", 202),
        entry("GET", "/machines/elsewhere", 200),  # not created by the run
    ]
    assert machine_chains(found) == {"m1": {"get", "act", "delete"}}
    assert machine_chains(found[:2]) == {"m1": {"get"}}


def test_server_errors_name_the_request() -> None:
    found = [entry("GET", "/machines", 200), entry("POST", "/tokens", 500)]
    assert server_errors(found) == ["POST /api/v1/tokens -> 500"]


def test_the_reproduction_names_the_seed_and_caller_and_no_secret(tmp_path: Path) -> None:
    admin = next(caller for caller in CALLERS if caller.name == "admin")
    run = FuzzRun("http://127.0.0.1:41234", 1234, admin, tmp_path)
    assert "hgr_secret" in " ".join(run.argv("hgr_secret"))
    text = run.reproduce()
    assert "HANGAR_FUZZ_SEED=1234 uv run nox -s fuzz -- fuzz -k admin" in text
    assert "--seed 1234" in text
    assert '--header "Authorization: Bearer $TOKEN"' in text
    assert "hgr_secret" not in text
    assert "41234" not in text  # the test's server is gone by then


def test_the_callers_send_more_than_a_thousand_requests_together() -> None:
    assert sum(caller.min_requests for caller in CALLERS) >= 1000
    assert {caller.name for caller in CALLERS} == {"anonymous", "viewer", "admin"}
