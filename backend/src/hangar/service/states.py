"""The machine state machine: states, actions, and the one table that says what is allowed when.

Callers rely on `check()` raising InvalidTransitionError (naming the current state) for anything the
table does not allow, and on `Transition.during` being the state shown while the action runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hangar.service.errors import InvalidTransitionError


class MachineState(StrEnum):
    PROVISIONING = "provisioning"
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    DELETING = "deleting"
    ERROR = "error"


STABLE_STATES = frozenset({MachineState.STOPPED, MachineState.RUNNING, MachineState.ERROR})


class Action(StrEnum):
    """What an operation does; also the operation's `kind`."""

    CREATE = "create"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    DELETE = "delete"
    CLONE = "clone"
    CREATE_DISK = "create_disk"
    ATTACH_DISK = "attach_disk"
    DETACH_DISK = "detach_disk"
    DELETE_DISK = "delete_disk"
    CREATE_SNAPSHOT = "create_snapshot"
    ROLLBACK_SNAPSHOT = "rollback_snapshot"
    DELETE_SNAPSHOT = "delete_snapshot"


@dataclass(frozen=True)
class Transition:
    """`allowed` states may start the action; the machine shows `during` while it runs and
    `after` once it succeeded (None: the state does not change). Any failure leads to `error`."""

    allowed: frozenset[MachineState]
    during: MachineState | None
    after: MachineState | None


S = MachineState
TRANSITIONS: dict[Action, Transition] = {
    # CREATE applies to a machine that does not exist yet; `after` is `running` when it also starts.
    Action.CREATE: Transition(frozenset(), S.PROVISIONING, S.STOPPED),
    Action.START: Transition(frozenset({S.STOPPED, S.ERROR}), S.STARTING, S.RUNNING),
    Action.STOP: Transition(frozenset({S.RUNNING}), S.STOPPING, S.STOPPED),
    Action.RESTART: Transition(frozenset({S.RUNNING}), S.RESTARTING, S.RUNNING),
    Action.DELETE: Transition(frozenset({S.STOPPED, S.RUNNING, S.ERROR}), S.DELETING, None),
    # CLONE: the source stays `stopped`; the clone itself goes provisioning -> stopped.
    Action.CLONE: Transition(frozenset({S.STOPPED}), None, None),
    Action.CREATE_DISK: Transition(frozenset({S.STOPPED}), None, None),
    Action.DELETE_DISK: Transition(frozenset({S.STOPPED}), None, None),
    Action.ATTACH_DISK: Transition(frozenset({S.STOPPED, S.RUNNING}), None, None),
    Action.DETACH_DISK: Transition(frozenset({S.STOPPED, S.RUNNING}), None, None),
    Action.CREATE_SNAPSHOT: Transition(frozenset({S.STOPPED}), None, None),
    Action.ROLLBACK_SNAPSHOT: Transition(frozenset({S.STOPPED}), None, None),
    Action.DELETE_SNAPSHOT: Transition(frozenset({S.STOPPED}), None, None),
}


def check(action: Action, state: str, machine_name: str) -> Transition:
    """The transition for `action` from `state`, or InvalidTransitionError naming both."""
    transition = TRANSITIONS[action]
    if state not in transition.allowed:
        needs = " or ".join(sorted(transition.allowed)) or "a machine that does not exist yet"
        raise InvalidTransitionError(
            f"machine {machine_name!r} is {state}; {action.value} needs {needs}",
            {"state": state, "action": action.value},
        )
    return transition
