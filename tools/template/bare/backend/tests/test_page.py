"""The page and its server, in-process: what `/` and `/health` answer, and what else is 404."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from hangar import cli
from hangar.page import make_server, render_page


def test_the_page_has_its_title_and_a_counter() -> None:
    page = render_page()
    assert "<h1>Hangar</h1>" in page
    assert 'id="count"' in page
    assert 'id="count-up"' in page


def test_a_title_is_escaped() -> None:
    assert "<h1>a &lt;b&gt;</h1>" in render_page("a <b>")


@pytest.fixture
def base_url() -> Iterator[str]:
    server = make_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 -- our own server
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_the_server_answers_the_page_and_health(base_url: str) -> None:
    status, content_type, body = get(f"{base_url}/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert body == render_page()
    assert get(f"{base_url}/health") == (200, "text/plain; charset=utf-8", "ok\n")


def test_anything_else_is_not_found(base_url: str) -> None:
    assert get(f"{base_url}/nothing-here")[0] == 404


def test_the_command_serves_until_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(self: object, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("http.server.ThreadingHTTPServer.serve_forever", interrupted)
    assert cli.main(["serve", "--port", "0"]) == 0
    assert capsys.readouterr().out.startswith("serving on http://127.0.0.1:")


def test_the_command_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2
    assert "serve" in capsys.readouterr().err
