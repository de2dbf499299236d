"""The page hangar serves, and the HTTP server that serves it (standard library only).

`GET /` answers the page: a heading and a counter that its script counts up on each click, so a
browser test proves that the page renders and that its script runs. `GET /health` answers `ok`.
Anything else is 404.
"""

from __future__ import annotations

import html
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE = "Hangar"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
</head>
<body>
  <h1>{title}</h1>
  <p>Clicked <output id="count" aria-label="clicks">0</output> times.</p>
  <button type="button" id="count-up">Count</button>
  <script>
    const count = document.getElementById("count");
    document.getElementById("count-up").addEventListener("click", () => {{
      count.textContent = String(Number(count.textContent) + 1);
    }});
  </script>
</body>
</html>
"""


def render_page(title: str = TITLE) -> str:
    """The page's HTML, with `title` escaped."""
    return PAGE.format(title=html.escape(title))


class PageHandler(BaseHTTPRequestHandler):
    """Answers `/` and `/health`; quiet (no line per request on stderr)."""

    def do_GET(self) -> None:
        if self.path == "/":
            self._answer(HTTPStatus.OK, "text/html; charset=utf-8", render_page())
        elif self.path == "/health":
            self._answer(HTTPStatus.OK, "text/plain; charset=utf-8", "ok\n")
        else:
            self._answer(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", "not found\n")

    def _answer(self, status: HTTPStatus, content_type: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No access log."""


def make_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound to (host, port), not yet serving; port 0 picks a free port."""
    return ThreadingHTTPServer((host, port), PageHandler)
