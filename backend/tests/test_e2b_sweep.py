"""Sweeping hangar's sandboxes by run, `hangar e2b sweep` and the E2B part of `hangar doctor`,
against replays of E2B's control plane (not E2B itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hangar.cli_e2b import doctor_e2b, e2b_app
from hangar.providers.e2b.sweep import SweptSandbox, sweep
from hangar.settings import Settings

from .e2b_replay import (
    API_KEY,
    DOMAIN,
    RUN,
    E2BReplay,
    RecordedWaits,
    listed_body,
    replay_config,
)

HANGAR = {"hangar": "1"}
OLD = "run-old"


def of_run(run: str, machine: str) -> dict[str, str]:
    return {"hangar": "1", "run": run, "machine": machine}


def three_sandboxes(replay: E2BReplay) -> None:
    """Two of a gone run (one running, one paused) and one of this service's run."""
    replay.sandboxes_listed(
        HANGAR,
        listed_body("isb1", of_run(OLD, "m1")),
        listed_body("isb2", of_run(OLD, "m2"), state="paused"),
        listed_body("isb3", of_run(RUN, "m3")),
    )


# ------------------------------------------------------------------ the function
@pytest.mark.asyncio
async def test_sweep_kills_the_sandboxes_of_gone_runs_only(e2b_replay: E2BReplay) -> None:
    three_sandboxes(e2b_replay)
    e2b_replay.sandbox_killed("isb1")
    e2b_replay.sandbox_gone("DELETE", "/sandboxes/isb2")  # expired meanwhile

    swept = await sweep(replay_config(), lambda run: run == OLD, sleep=RecordedWaits())

    assert swept == [
        SweptSandbox("isb1", OLD, "m1", "running", killed=True),
        SweptSandbox("isb2", OLD, "m2", "paused", killed=False),
    ]


@pytest.mark.asyncio
async def test_a_dry_sweep_kills_nothing(e2b_replay: E2BReplay) -> None:
    three_sandboxes(e2b_replay)
    swept = await sweep(replay_config(), lambda run: run != RUN, dry_run=True)
    assert [(s.sandbox_id, s.killed) for s in swept] == [("isb1", False), ("isb2", False)]


# ------------------------------------------------------------------ the command
@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HANGAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HANGAR_RUN_ID", RUN)
    monkeypatch.setenv("HANGAR_E2B_API_KEY", API_KEY)
    monkeypatch.setenv("HANGAR_E2B_DOMAIN", DOMAIN)


@pytest.mark.usefixtures("environment")
def test_the_command_sweeps_one_run(e2b_replay: E2BReplay) -> None:
    three_sandboxes(e2b_replay)
    e2b_replay.sandbox_killed("isb1")
    e2b_replay.sandbox_killed("isb2")

    result = CliRunner().invoke(e2b_app, ["sweep", "--run", OLD])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "killed       isb1  run run-old  machine m1  (running)",
        "killed       isb2  run run-old  machine m2  (paused)",
        "2 sandbox(es) of run run-old",
    ]


@pytest.mark.usefixtures("environment")
def test_without_a_run_the_command_sweeps_every_run_but_the_services_own(
    e2b_replay: E2BReplay,
) -> None:
    three_sandboxes(e2b_replay)

    result = CliRunner().invoke(e2b_app, ["sweep", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "2 sandbox(es) of every run but this service's own (run-7)"
    )
    assert "would kill   isb1" in result.output
    assert "isb3" not in result.output


@pytest.mark.usefixtures("environment")
def test_the_command_without_a_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANGAR_E2B_API_KEY")
    result = CliRunner().invoke(e2b_app, ["sweep"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "HANGAR_E2B_API_KEY (or the SDK's E2B_API_KEY) is not set; the e2b provider needs"
    )


@pytest.mark.usefixtures("environment")
def test_the_command_with_a_wrong_setting_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_E2B_TIMEOUT_S", "5")
    result = CliRunner().invoke(e2b_app, ["sweep"])
    assert result.exit_code == 1
    assert result.output.startswith("HANGAR_E2B_TIMEOUT_S: Input should be greater than")


@pytest.mark.usefixtures("environment")
def test_the_command_with_a_rejected_key_says_so_in_one_line(e2b_replay: E2BReplay) -> None:
    e2b_replay.refused("GET", "/v2/sandboxes", 401, "Invalid API key", metadata=HANGAR)
    result = CliRunner().invoke(e2b_app, ["sweep", "--run", OLD])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("HANGAR_E2B_API_KEY is not accepted by E2B (401")


# ------------------------------------------------------------------ the doctor
def doctor_settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.model_validate({"data_dir": tmp_path, "run_id": RUN, **values})


def test_the_doctor_accepts_a_key_e2b_accepts(
    e2b_replay: E2BReplay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_sandboxes(e2b_replay)
    settings = doctor_settings(tmp_path, e2b_api_key=API_KEY, e2b_domain=DOMAIN)
    assert doctor_e2b(settings) == 0
    assert capsys.readouterr().out == (
        "e2b api key          ok (HANGAR_E2B_API_KEY; 3 hangar sandbox(es), 1 of run run-7)\n"
    )


def test_the_doctor_reports_a_key_e2b_refuses(
    e2b_replay: E2BReplay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e2b_replay.refused("GET", "/v2/sandboxes", 401, "Invalid API key", metadata=HANGAR)
    settings = doctor_settings(tmp_path, e2b_api_key=API_KEY, e2b_domain=DOMAIN)
    assert doctor_e2b(settings) == 1
    assert capsys.readouterr().out == (
        "e2b api key          HANGAR_E2B_API_KEY is not accepted (401)\n"
    )


def test_the_doctor_asks_once_when_e2b_is_busy(
    e2b_replay: E2BReplay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e2b_replay.refused("GET", "/v2/sandboxes", 429, "slow down", metadata=HANGAR)
    settings = doctor_settings(tmp_path, e2b_api_key=API_KEY, e2b_domain=DOMAIN)
    assert doctor_e2b(settings) == 1
    assert capsys.readouterr().out.startswith("e2b api key          cannot check it: E2B refused")


@pytest.mark.parametrize(("providers", "problems"), [(["fake"], 0), (["fake", "e2b"], 1)])
def test_the_doctor_counts_a_missing_key_only_when_e2b_is_enabled(
    providers: list[str], problems: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor_e2b(doctor_settings(tmp_path, providers=providers)) == problems
    line = capsys.readouterr().out
    assert ("MISSING: set HANGAR_E2B_API_KEY" in line) == bool(problems)
