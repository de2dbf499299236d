"""Machines: the critical lifecycle flow, live updates, faults and form validation."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.conftest import MachineNames
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import AppShell
from testkit.client import ApiClient

LIVE_WITHIN_MS = 2_000


def test_critical_flow_on_the_fake_provider(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    """create → running → stop → stopped → start → restart → guest page → delete → gone."""
    name = names.new("web")
    machines = MachinesPage(admin_page).open()

    machines.create(name, image="debian-12", cpus=2, memory_mb=512)
    machines.expect_pending(name)
    machines.expect_state(name, "running")

    machines.stop(name)
    machines.expect_pending(name)
    machines.expect_state(name, "stopped")

    machines.start(name)
    machines.expect_state(name, "running")

    machines.restart(name)
    machines.expect_pending(name)
    machines.expect_state(name, "running")

    machines.open_machine(name)
    detail = MachineDetailPage(admin_page)
    detail.expect_state("running")
    detail.expect_console(f"{name} booted")
    # The fake provider has no web endpoint (no `endpoint` capability): the panel says so.
    detail.expect_no_endpoint()

    admin_page.go_back()
    machines.expect_state(name, "running")
    machines.delete(name)
    machines.expect_gone(name)
    assert all(m["name"] != name for m in api.machines())


def test_change_through_the_api_appears_without_reload(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    machines = MachinesPage(admin_page).open()
    name = names.new("live")
    machine = api.create_machine(name, start=False, wait=False)
    expect(machines.row(name)).to_be_visible(timeout=LIVE_WITHIN_MS)
    machines.expect_state(name, "stopped")

    api.act(machine["id"], "start")  # returns once the operation succeeded
    machines.expect_state(name, "running", timeout=LIVE_WITHIN_MS)

    api.delete_machine(machine["id"])
    expect(machines.row(name)).to_have_count(0, timeout=LIVE_WITHIN_MS)


def test_dashboard_counts_follow_the_api(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    AppShell(admin_page).open("dashboard")
    total = admin_page.get_by_test_id("total-machines")
    expect(total).to_have_attribute("aria-busy", "false")
    before = int(total.inner_text())
    api.create_machine(names.new("count"), start=False, wait=False)
    expect(total).to_have_text(str(before + 1), timeout=LIVE_WITHIN_MS)
    expect(admin_page.get_by_role("list", name="Recent events")).to_contain_text(names.prefix)


def test_injected_fault_shows_error_state_and_message(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    name = names.new("faulty")
    message = f"injected fault for {name}: the fake host lost power"
    api.inject_fault("start", message)
    machines = MachinesPage(admin_page).open()
    machines.create(name)
    machines.expect_error(name, message)
    expect(AppShell(admin_page).error_message().filter(has_text=message)).to_be_visible()

    # error allows start again; the fault was for one call only.
    machines.start(name)
    machines.expect_state(name, "running")


def test_form_validation_quotes_the_server(admin_page: Page, names: MachineNames) -> None:
    machines = MachinesPage(admin_page).open()
    machines.submit_invalid("Bad_Name!", cpus=99, memory_mb=1)
    expect(machines.field_error("name")).to_contain_text("must be a DNS label")
    expect(machines.field_error("cpus")).to_contain_text("8")
    expect(machines.field_error("memory_mb")).to_contain_text("64")
    expect(machines.form.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(machines.form.get_by_label("Name")).to_be_focused()

    # Fixing the fields clears the messages and creates the machine.
    name = names.new("valid")
    machines.create(name, cpus=1, memory_mb=128, start=False)
    expect(machines.field_error("name")).to_be_hidden()
    machines.expect_state(name, "stopped")

    # A name that is taken: the server's conflict message is shown as it is.
    machines.submit_invalid(name, start=False)
    expect(machines.form_error).to_contain_text(f"a machine named '{name}' already exists")


def test_clone_makes_a_stopped_copy(admin_page: Page, api: ApiClient, names: MachineNames) -> None:
    source = names.new("src")
    api.create_machine(source, start=False)
    machines = MachinesPage(admin_page).open()
    copy = names.new("copy")
    machines.clone(source, copy)
    machines.expect_state(copy, "stopped")
    machines.expect_state(source, "stopped")
