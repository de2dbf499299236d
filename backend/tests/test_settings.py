"""Settings from the environment, and the provider registry built from them."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from hangar.providers import registry
from hangar.providers.fake import FakeProvider
from hangar.settings import RUN_ID_PATTERN, Settings, async_database_url, default_frontend_dir


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == tmp_path / ".hangar"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / '.hangar' / 'hangar.db'}"
    assert settings.providers == ["fake"]
    assert settings.sse_heartbeat_seconds == 15
    assert settings.frontend_dir == default_frontend_dir()


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HANGAR_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("HANGAR_PROVIDERS", " fake , qemu,")
    monkeypatch.setenv("HANGAR_DATABASE_URL", "postgresql://u:p@db/hangar")
    monkeypatch.setenv("HANGAR_SSE_HEARTBEAT_SECONDS", "2.5")
    monkeypatch.setenv("HANGAR_LOGIN_ATTEMPTS_PER_USER", "3")
    settings = Settings()
    assert settings.providers == ["fake", "qemu"]
    assert settings.database_url == "postgresql+psycopg://u:p@db/hangar"
    assert settings.sse_heartbeat_seconds == 2.5
    assert settings.login_attempts_per_user == 3


def test_empty_frontend_dir_turns_the_ui_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_FRONTEND_DIR", "")
    assert Settings().frontend_dir is None


def test_no_provider_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_PROVIDERS", " , ")
    with pytest.raises(ValueError, match="HANGAR_PROVIDERS=fake"):
        Settings()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg://h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_get_an_async_driver(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    key = settings.resolved_secret_key()
    assert len(key) >= 32
    assert Settings(data_dir=tmp_path / "d").resolved_secret_key() == key
    mode = stat.S_IMODE((tmp_path / "d" / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert Settings(data_dir=tmp_path / "d", secret_key="given").resolved_secret_key() == "given"


def test_registry_builds_enabled_providers(tmp_path: Path) -> None:
    providers = registry.build_providers(Settings(data_dir=tmp_path, fake_latency_seconds=0.25))
    fake = providers["fake"]
    assert isinstance(fake, FakeProvider)
    assert fake.latency == 0.25


def test_registry_refuses_unknown_providers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, providers=["fake", "vmware"])
    known = r"known: e2b, fake, proxmox, qemu$"
    with pytest.raises(registry.UnknownProviderError, match=rf"vmware.*{known}"):
        registry.build_providers(settings)


def test_run_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    run_id = Settings(data_dir=tmp_path / "d").resolved_run_id()
    assert re.fullmatch(RUN_ID_PATTERN, run_id)
    assert run_id
    assert Settings(data_dir=tmp_path / "d").resolved_run_id() == run_id
    assert Settings(data_dir=tmp_path / "d", run_id="ci-42").resolved_run_id() == "ci-42"


@pytest.mark.parametrize("bad", ["Upper", "-lead", "has space", "x" * 41, "semi;colon"])
def test_a_run_id_that_cannot_be_a_tag_is_refused(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_RUN_ID", bad)
    with pytest.raises(ValueError, match="run_id"):
        Settings()
