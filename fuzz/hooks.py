"""schemathesis hooks of the fuzz tier, loaded by `st run` through SCHEMATHESIS_HOOKS.

The run's own API tokens must outlive it: schemathesis learns ids from responses (GET
/api/v1/tokens lists the caller's own), so it would revoke the token it calls with and test the
rest of the API as a stranger. A DELETE of such an id is sent for an unknown id instead (a 404,
which the checks judge like any other answer).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis
from schemathesis import Case, HookContext

# Comma-separated ids of the tokens the run calls with; set by the test that starts `st run`.
PROTECTED_TOKENS_ENV = "HANGAR_FUZZ_PROTECTED_TOKENS"


def protected_tokens() -> frozenset[str]:
    return frozenset(filter(None, os.environ.get(PROTECTED_TOKENS_ENV, "").split(",")))


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    """Send the revocation of one of the run's own tokens for an unknown token id instead."""
    del context, kwargs
    parameters = case.path_parameters or {}
    if case.method.upper() == "DELETE" and parameters.get("token_id") in protected_tokens():
        case.path_parameters = {**parameters, "token_id": uuid.uuid4().hex}
