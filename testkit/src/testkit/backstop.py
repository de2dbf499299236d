"""A backstop for pytest-timeout's `signal` method: a test stuck past its timeout ends the run.

The signal method (this project's, for every tier) fails a test that outlives its timeout by
raising from a SIGALRM handler, so the run goes on with the next test. Python runs that handler
between two bytecodes of whatever runs then, and where that code swallows exceptions (a weakref
callback, a `__del__`, an interpreter pending call, an `except BaseException`) the failure is
lost: the timer does not fire again, and a test stuck in a loop holds the run until CI's own
limit. This plugin arms a second timer for each test that has a timeout, in a thread:
`grace(timeout)` later it writes every thread's stack to the terminal, past output capture, and
ends the process with exit status 1, as pytest-timeout's `thread` method does. A stuck test
costs minutes and names where it was stuck, instead of hours and nothing.

It stands down where pytest-timeout does: under a debugger and in pdb.

The root conftest.py loads it (`pytest_plugins`).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading

import pytest

EXIT_STATUS = 1
GRACE_S = 30.0  # beyond twice the timeout; see grace()
DEBUGGERS = ("pydevd", "bdb", "debugpy")  # modules whose trace function is a debugger's
_TIMERS = pytest.StashKey[threading.Timer]()


def grace(timeout: float) -> float:
    """How long after the start of a test the backstop fires: long enough for the signal method
    to fail the test and its teardown to finish, short enough to beat any CI time limit."""
    return 2 * timeout + GRACE_S


def debugging() -> bool:
    """A debugger traces this process (pytest-timeout stands down then too). Coverage's tracer
    is not one: this checks the trace function's module, as pytest-timeout does."""
    trace = sys.gettrace()
    if trace is not None:
        module = getattr(trace, "__module__", None) or type(trace).__module__
        if any(part.startswith(DEBUGGERS) for part in module.split(".")):
            return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and monitoring.get_tool(monitoring.DEBUGGER_ID) is not None


def fire(item: pytest.Item, after: float) -> None:
    """Write the stacks where the terminal shows them, then end the process."""
    try:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        sys.stderr.write(
            f"\n{'+' * 20} backstop {'+' * 20}\n"
            f"{item.nodeid} is still running {after:.0f} s after it started: its timeout did "
            "not stop it (the SIGALRM handler's exception was swallowed where it ran, or the "
            "test's teardown is stuck too).\n"
            "The stacks of every thread:\n"
        )
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
    finally:
        os._exit(EXIT_STATUS)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """Arm the backstop, and let pytest-timeout's own timer be set too (returns None)."""
    timeout = getattr(settings, "timeout", None)
    if not timeout or timeout <= 0 or getattr(settings, "method", None) != "signal":
        return  # the thread method ends the process itself
    if debugging():
        return
    after = grace(float(timeout))
    timer = threading.Timer(after, fire, (item, after))
    timer.name = f"testkit backstop {item.nodeid}"
    timer.daemon = True
    item.stash[_TIMERS] = timer
    timer.start()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    """Disarm it when pytest-timeout disarms its own (returns None, so that runs too)."""
    disarm(item)


def disarm(item: pytest.Item) -> None:
    timer = item.stash.get(_TIMERS, None)
    if timer is not None:
        timer.cancel()
        del item.stash[_TIMERS]


def pytest_enter_pdb(config: pytest.Config, pdb: object) -> None:
    """A person debugging is never ended by the clock: disarm every armed timer."""
    del config, pdb
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.name.startswith("testkit backstop "):
            thread.cancel()
