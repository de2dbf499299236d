"""The viewer role reads everything, sees no mutating control, and the API refuses its mutations."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.conftest import MachineNames
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import AppShell
from testkit.client import ApiClient


def test_viewer_sees_no_mutating_controls(
    viewer_page: Page, api: ApiClient, names: MachineNames
) -> None:
    name = names.new("ro")
    machine = api.create_machine(name, start=False)

    AppShell(viewer_page).open("dashboard")
    expect(viewer_page.get_by_role("link", name="New machine")).to_have_count(0)

    machines = MachinesPage(viewer_page).open()
    machines.expect_state(name, "stopped")
    expect(machines.form).to_have_count(0)
    expect(machines.row(name).get_by_role("button")).to_have_count(0)

    detail = MachineDetailPage(viewer_page).open(machine["id"], name)
    detail.expect_state("stopped")
    main = viewer_page.get_by_role("main")
    expect(main.get_by_role("button", name="Start")).to_have_count(0)
    expect(main.get_by_role("button", name="Delete")).to_have_count(0)
    expect(main.get_by_role("textbox")).to_have_count(0)


def test_api_refuses_the_viewers_mutations(
    viewer_api: ApiClient, api: ApiClient, names: MachineNames
) -> None:
    machine = api.create_machine(names.new("ro-api"), start=False)
    attempts = [
        (
            "POST",
            "/machines",
            {
                "name": names.new("nope"),
                "provider": "fake",
                "image": "alpine-3.20",
                "cpus": 1,
                "memory_mb": 128,
            },
        ),
        ("POST", f"/machines/{machine['id']}/start", None),
        ("DELETE", f"/machines/{machine['id']}", None),
        ("POST", f"/machines/{machine['id']}/disks", {"name": "d", "size_mb": 1}),
        ("POST", "/providers/fake/faults", {"action": "start", "message": "x", "times": 1}),
    ]
    for method, path, body in attempts:
        answer = viewer_api.call(method, path, json=body) if body else viewer_api.call(method, path)
        assert answer.status_code == 403, f"{method} {path} -> {answer.status_code}: {answer.text}"
        assert answer.json()["error"]["code"] == "forbidden"
    assert api.machine(machine["id"])["state"] == "stopped"
