"""``python -m llmproxy.platform.die_with_parent PROGRAM ARGS...``: run PROGRAM so that the
kernel sends it SIGTERM when the process that started it dies (Linux PR_SET_PDEATHSIG,
which survives exec).

A trampoline instead of ``subprocess``'s ``preexec_fn``: running Python code between fork
and exec is unsafe in a process with threads (gRPC's pollers, for one) and was seen to
abort the child.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m llmproxy.platform.die_with_parent PROGRAM [ARGS...]")
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the launcher still stops its children itself
    # The parent may already be gone (a race at start): then do not start at all.
    if os.getppid() == 1:
        sys.exit(1)
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
