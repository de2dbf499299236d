"""The e2b provider's settings (HANGAR_E2B_*): defaults, the key from either variable, and each
wrong value refused with one line naming its variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hangar.providers.e2b.config import E2BConfig, E2BSettingsError
from hangar.settings import Settings, explain


def test_the_settings_build_the_providers_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HANGAR_E2B_API_KEY", "e2b_from_hangar")
    monkeypatch.setenv("HANGAR_E2B_TEMPLATE", "my-template")
    monkeypatch.setenv("HANGAR_E2B_TIMEOUT_S", "900")
    monkeypatch.setenv("HANGAR_E2B_DOMAIN", "e2b.example.com")
    config = Settings(data_dir=tmp_path).e2b_config()
    assert config == E2BConfig(
        api_key="e2b_from_hangar", template="my-template", timeout_s=900, domain="e2b.example.com"
    )
    assert config.key_variable == "HANGAR_E2B_API_KEY"


def test_defaults_template_base_a_five_minute_lifetime_and_the_sdks_domain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HANGAR_E2B_API_KEY", "e2b_from_hangar")
    monkeypatch.setenv("HANGAR_E2B_DOMAIN", "")
    config = Settings(data_dir=tmp_path).e2b_config()
    assert (config.template, config.timeout_s, config.domain) == ("base", 300, None)


def test_the_sdks_own_variable_is_accepted_and_named_in_messages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("E2B_API_KEY", "e2b_from_the_sdk")
    config = Settings(data_dir=tmp_path).e2b_config()
    assert (config.api_key, config.key_variable) == ("e2b_from_the_sdk", "E2B_API_KEY")
    monkeypatch.setenv("HANGAR_E2B_API_KEY", "e2b_from_hangar")
    assert Settings(data_dir=tmp_path).e2b_config().api_key == "e2b_from_hangar"


def test_no_key_is_one_line_naming_the_variables(tmp_path: Path) -> None:
    with pytest.raises(E2BSettingsError) as caught:
        Settings(data_dir=tmp_path).e2b_config()
    assert str(caught.value) == (
        "HANGAR_E2B_API_KEY (or the SDK's E2B_API_KEY) is not set; the e2b provider needs an "
        "E2B API key (https://e2b.dev/dashboard?tab=keys)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HANGAR_E2B_TIMEOUT_S", "10", "Input should be greater than or equal to 30"),
        ("HANGAR_E2B_TIMEOUT_S", "90000", "Input should be less than or equal to 86400"),
        ("HANGAR_E2B_TIMEOUT_S", "soon", "Input should be a valid integer, unable to parse"),
        ("HANGAR_E2B_TEMPLATE", "", "String should have at least 1 character"),
    ],
)
def test_a_wrong_value_is_refused_naming_its_variable(
    variable: str, value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert explain(caught.value).startswith(f"{variable}: {says}")


def test_the_lifetime_must_outlive_a_missed_keep_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_PROVIDERS", "fake,e2b")
    monkeypatch.setenv("HANGAR_OBSERVER_INTERVAL_SECONDS", "20")
    monkeypatch.setenv("HANGAR_E2B_TIMEOUT_S", "59")
    with pytest.raises(ValidationError, match=r"HANGAR_E2B_TIMEOUT_S \(59\) must be at least 3"):
        Settings()
    monkeypatch.setenv("HANGAR_E2B_TIMEOUT_S", "60")
    assert Settings().e2b_timeout_s == 60
    monkeypatch.setenv("HANGAR_PROVIDERS", "fake")  # no e2b: no keep-alive to outlive
    monkeypatch.setenv("HANGAR_E2B_TIMEOUT_S", "30")
    assert Settings().e2b_timeout_s == 30


def test_the_key_is_not_shown_by_the_settings_or_the_configuration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, e2b_api_key="e2b_secret_value")
    assert "e2b_secret_value" not in repr(settings)
    assert "e2b_secret_value" not in repr(settings.e2b_config())


def test_the_settings_do_not_import_the_e2b_sdk() -> None:
    """The SDK is a heavy import: only an enabled provider (or the e2b CLI) loads it."""
    probe = (
        "import sys\n"
        "from hangar.settings import Settings\n"
        "Settings(e2b_api_key='e2b_x').e2b_config()\n"
        "print('e2b' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "False"
