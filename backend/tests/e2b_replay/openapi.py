"""E2B's OpenAPI description (vendored: `openapi.yml`, origin in README.md), loaded into
openapi-core, which checks every replayed exchange against it, and the adapter that hands
openapi-core httpx's requests and responses (openapi-core ships none for httpx).

openapi-core checks operations, statuses, parameters, security, bodies and headers. Where OpenAPI
leaves something open, the replays are held stricter (README.md says why):

- an object may hold only the properties its schema declares, unless it allows
  `additionalProperties` (openapi-core's `additional_properties_default_policy="forbid"`);
- a request may carry only the query parameters its operation declares, and a body only if the
  operation takes one; a response only the headers it declares, and a body only if it has content.

The loaded document (never the file) gets two additions: every operation also answers the shared
error responses of `components/responses` it does not list, and the SDK's routes the description
lacks are served by their v1 twins (`SDK_ROUTE_ALIASES`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.finders import ResponseFinder
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_FILE = Path(__file__).with_name("openapi.yml")
SERVER = "https://api.e2b.app"  # the description's one server

# Routes the installed SDK (e2b 2.63) calls that the vendored description does not list yet,
# checked against their v1 twins, which take and return the same shapes (see README.md).
SDK_ROUTE_ALIASES = {
    ("POST", "/v2/sandboxes"): "/sandboxes",
    ("POST", "/v2/sandboxes/{sandboxID}/connect"): "/sandboxes/{sandboxID}/connect",
}
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class SpecViolationError(AssertionError):
    """A replayed request or response that E2B's API description does not allow."""


# ------------------------------------------------------------------ httpx, as openapi-core reads it
class HttpxOpenAPIRequest:
    """An `httpx.Request` as openapi-core's `Request` protocol (`openapi_core.protocols`)."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(request.headers.multi_items()),
        )

    @property
    def host_url(self) -> str:
        return f"{self.request.url.scheme}://{self.request.url.netloc.decode('ascii')}"

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.request.content or None

    @property
    def content_type(self) -> str:
        return str(self.request.headers.get("Content-Type", "")).lower()


class HttpxOpenAPIResponse:
    """An `httpx.Response` as openapi-core's `Response` protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return str(self.response.headers.get("Content-Type", "")).lower()

    @property
    def headers(self) -> Headers:
        return Headers(self.response.headers.multi_items())

    @property
    def data(self) -> bytes | None:
        return self.response.content or None


# ------------------------------------------------------------------ the description
@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # the template of the operation that checks it, e.g. /sandboxes/{sandboxID}
    definition: SchemaPath
    query: frozenset[str]  # the query parameters it declares

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class OpenApiSpec:
    """One OpenAPI document in openapi-core, and the replays' checks against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        # Checking that the document is valid OpenAPI takes longer than all the replays of a
        # test file: `test_e2b_replay_canary.py` does it once, not every process.
        config = Config(additional_properties_default_policy="forbid", spec_validator_cls=None)
        self.api = OpenAPI.from_dict(document, config=config)
        self._paths = APICallPathFinder(self.api.spec)

    @classmethod
    @functools.cache
    def vendored(cls) -> OpenApiSpec:
        """The vendored description as the replays read it, parsed once per process."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when built: 7x faster
        document = yaml.load(SPEC_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
        shared = document["components"]["responses"]
        for item in document["paths"].values():
            for method in METHODS & item.keys():
                for status in shared:
                    ref = {"$ref": f"#/components/responses/{status}"}
                    item[method]["responses"].setdefault(status, ref)
        for (method, sdk_path), v1_path in SDK_ROUTE_ALIASES.items():
            twin = document["paths"][v1_path][method.lower()]
            document["paths"].setdefault(sdk_path, {})[method.lower()] = twin
        return cls(document)

    def operation(self, method: str, path: str) -> Operation:
        """The operation that serves METHOD PATH (a concrete path), aliases applied."""
        method = method.upper()
        try:
            found = self._paths.find(method.lower(), SERVER + path)
        except PathError as exc:
            raise SpecViolationError(
                f"E2B's API description has no operation {method} {path} ({exc})"
            ) from exc
        template = found.path_result.pattern
        parameters = [*found.path.get("parameters", []), *found.operation.get("parameters", [])]
        query = frozenset(
            (parameter / "name").read_str()
            for parameter in parameters
            if (parameter / "in").read_str() == "query"
        )
        template = SDK_ROUTE_ALIASES.get((method, template), template)
        return Operation(method, template, found.operation, query)

    def check_request(self, request: httpx.Request) -> Operation:
        """Raise SpecViolationError unless the request is one the description allows."""
        operation = self.operation(request.method, request.url.path)
        with _openapi_core_says(f"{operation} request"):
            self.api.validate_request(HttpxOpenAPIRequest(request))
        unknown = sorted(set(request.url.params) - operation.query)
        if unknown:
            raise SpecViolationError(f"{operation}: undeclared query parameter(s) {unknown}")
        if request.content and "requestBody" not in operation.definition:
            raise SpecViolationError(f"{operation} takes no body, got {request.content!r}")
        return operation

    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        body: object | None,
        headers: Mapping[str, str] | None = None,
    ) -> Operation:
        """Raise SpecViolationError unless `status` with `body` (and `headers`) is a response
        METHOD PATH may give."""
        operation = self.operation(method, path)
        headers = headers or {}
        response = httpx.Response(status, headers=headers)
        if body is not None:
            response = httpx.Response(status, json=body, headers=headers)
        with _openapi_core_says(f"{operation} {status}"):
            self.api.validate_response(
                HttpxOpenAPIRequest(httpx.Request(method, SERVER + path)),
                HttpxOpenAPIResponse(response),
            )
        described = ResponseFinder(operation.definition / "responses").find(str(status))
        named = (described / "headers").str_keys() if "headers" in described else ()
        declared = {name.lower() for name in named}
        undeclared = sorted(name for name in headers if name.lower() not in declared)
        if undeclared:
            raise SpecViolationError(f"{operation} {status} declares no header(s) {undeclared}")
        if body is not None and "content" not in described:
            raise SpecViolationError(f"{operation} answers {status} without a body, got {body!r}")
        return operation


@contextmanager
def _openapi_core_says(where: str) -> Iterator[None]:
    """openapi-core's error in the block becomes a SpecViolationError naming `where` and, when a
    schema refused a value, jsonschema's message and the path to the value it refused."""
    try:
        yield
    except OpenAPIError as exc:
        errors = getattr(exc.__cause__, "schema_errors", None) or ()
        reasons = [f"{getattr(e, 'json_path', '$')}: {getattr(e, 'message', e)}" for e in errors]
        detail = f"{type(exc).__name__}: {'; '.join(reasons)}" if reasons else str(exc)
        raise SpecViolationError(f"{where}: {detail}") from exc
