"""The `hangar` command line, through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hangar import cli
from hangar.db import migrate

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("HANGAR_DATA_DIR", str(path))
    return path


def run(*args: str, input: str | None = None) -> Any:
    return runner.invoke(cli.build(), list(args), input=input)


def database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'hangar.db'}"


def test_migrate(data_dir: Path) -> None:
    result = run("migrate")
    assert result.exit_code == 0, result.output
    assert f"revision {migrate.head_revision()}" in result.output
    assert migrate.current_revision_sync(database_url(data_dir)) == migrate.head_revision()
    down = run("migrate", "--revision", "base")
    assert down.exit_code == 0
    assert migrate.current_revision_sync(database_url(data_dir)) is None
    assert "base (empty)" in down.output
    up = run("migrate", "--revision", str(migrate.head_revision()))
    assert migrate.current_revision_sync(database_url(data_dir)) == migrate.head_revision()
    assert up.exit_code == 0
    unknown = run("migrate", "--revision", "9999")
    assert unknown.exit_code == 1
    assert "unknown revision '9999'" in unknown.output


def test_create_user_needs_a_migrated_database(data_dir: Path) -> None:
    result = run("create-user", "alice", "--password", "long-password")
    assert result.exit_code == 1
    assert "uv run hangar migrate" in result.output


def test_create_user_with_option_and_prompt(data_dir: Path) -> None:
    assert run("migrate").exit_code == 0
    first = run("create-user", "alice", "--password", "long-password")
    assert first.exit_code == 0, first.output
    assert "created admin 'alice'" in first.output
    second = run("create-user", "bob", "--role", "viewer", input="pw-for-bob\npw-for-bob\n")
    assert second.exit_code == 0, second.output
    assert "created viewer 'bob'" in second.output
    again = run("create-user", "alice", "--password", "long-password")
    assert again.exit_code == 1
    assert "already exists" in again.output
    short = run("create-user", "carol", "--password", "short")
    assert short.exit_code == 1
    assert "at least 8" in short.output
    bad_name = run("create-user", "Carol!", "--password", "long-password")
    assert bad_name.exit_code == 1


def test_tokens_create_list_revoke(data_dir: Path) -> None:
    assert run("migrate").exit_code == 0
    assert run("tokens", "list").output.strip() == "no tokens"
    assert run("create-user", "alice", "--password", "long-password").exit_code == 0
    created = run("tokens", "create", "alice", "--name", "deploy")
    assert created.exit_code == 0, created.output
    assert created.output.startswith("hgr_")
    listed = run("tokens", "list", "alice")
    assert listed.exit_code == 0
    token_id, name, *_rest, status = listed.output.strip().split("\t")
    assert (name, status) == ("deploy", "active")
    revoked = run("tokens", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked 20" in run("tokens", "list").output
    assert run("tokens", "revoke", "nope").exit_code == 1
    assert run("tokens", "create", "nobody").exit_code == 1


def test_serve_refuses_an_unmigrated_database(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    result = run("serve")
    assert result.exit_code == 1
    assert "--migrate" in result.output
    assert calls == []


@pytest.mark.parametrize(
    ("providers", "says"),
    [
        ("fake,vmware", "HANGAR_PROVIDERS names unknown provider(s) vmware"),
        ("fake,e2b", "HANGAR_E2B_API_KEY"),
    ],
)
def test_serve_refuses_a_provider_it_cannot_build_before_starting(
    providers: str, says: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setenv("HANGAR_PROVIDERS", providers)
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    result = run("serve", "--migrate")
    assert result.exit_code == 1
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert calls == []


def test_serve_with_migrate_runs_uvicorn(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    result = run("serve", "--migrate", "--port", "18123", "--host", "0.0.0.0")  # noqa: S104
    assert result.exit_code == 0, result.output
    (args, kwargs), *_ = calls
    assert kwargs == {"host": "0.0.0.0", "port": 18123}  # noqa: S104
    assert args[0].title == "hangar"
    reload = run("serve", "--reload")
    assert reload.exit_code == 0
    assert calls[1][0] == ("hangar.api.app:create_app",)
    assert calls[1][1]["factory"] is True


def test_dev_setup_creates_admin_once(data_dir: Path) -> None:
    first = run("dev-setup")
    assert first.exit_code == 0, first.output
    password = (data_dir / "admin_password").read_text(encoding="utf-8")
    assert f"admin / {password}" in first.output
    second = run("dev-setup")
    assert f"admin / {password}" in second.output


def test_dev_setup_uses_the_admin_password_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_ADMIN_PASSWORD", "from-the-env")
    result = run("dev-setup")
    assert "admin / from-the-env" in result.output
    assert not (data_dir / "admin_password").exists()


def test_dev_setup_with_existing_users_and_no_stored_password(data_dir: Path) -> None:
    assert run("migrate").exit_code == 0
    assert run("create-user", "alice", "--password", "long-password").exit_code == 0
    result = run("dev-setup")
    assert "unchanged" in result.output


def test_other_modules_can_add_groups_and_commands(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = typer.Typer()

    @images.command("list")
    def list_images() -> None:
        typer.echo("debian-12")

    def hello() -> None:
        """Say hello."""
        typer.echo("all good")

    monkeypatch.setattr(cli, "SUBAPPS", [*cli.SUBAPPS, ("extra", images)])
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, hello])
    monkeypatch.setattr(cli, "app", typer.Typer())
    assert run("extra", "list").output.strip() == "debian-12"
    assert run("hello").output.strip() == "all good"
    assert "tokens" in run("--help").output


def test_main_runs_the_app(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setattr("sys.argv", ["hangar", "migrate"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0


def test_a_wrong_setting_is_one_line_naming_its_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_RUN_ID", "Not A Tag")
    monkeypatch.setenv("HANGAR_SESSION_HOURS", "-1")
    result = run("migrate")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith("HANGAR_RUN_ID: String should match pattern")
    assert lines[1] == "HANGAR_SESSION_HOURS: Input should be greater than 0"
    assert "Traceback" not in result.output
    assert not data_dir.exists()  # nothing was made before the settings were read
