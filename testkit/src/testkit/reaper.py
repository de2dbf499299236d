"""`python -m testkit.reaper <run id>`: waits for its stdin to close, then reaps the run.

Started by `testkit.runs.start_reaper` in a session of its own, with a pipe from the test process
as its stdin. The pipe closes when the test process ends, however it ends (`kill -9` too: the
kernel closes its descriptors); then this process ends everything of the run and removes its
tagged temp dirs (`testkit.runs.reap`), prints what it ended (read at a normal end, unread after
a kill) and exits. It starts nothing and carries no run tag, so no sweeper takes it for a run's.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

from testkit import runs

USAGE = "usage: python -m testkit.reaper <run id>  (a run id is <pid>-<6 hex digits>)"


def wait_for_eof(descriptor: int = 0) -> None:
    """Read (and drop) whatever comes until the writer's end closes."""
    while True:
        try:
            if not os.read(descriptor, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not re.fullmatch(runs.RUN_ID_PATTERN, args[0]):
        sys.stderr.write(f"{USAGE}; got {args}\n")
        return 2
    wait_for_eof()
    ended = runs.reap(args[0])
    with contextlib.suppress(OSError):  # after a kill nobody reads: a broken pipe
        os.write(1, "".join(f"{line}\n" for line in ended).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
