"""PID 1 of a lab host once it has booted (``lab_init.sh`` execs it): reaps every orphan
of the host's PID namespace and, on SIGTERM or SIGINT, stops all of them and exits.

Runs with ``python -I -S`` inside the host, so it imports nothing but the standard
library. A power-off does not come here: the lab SIGKILLs this process and the kernel
kills the whole PID namespace.
"""

from __future__ import annotations

import os
import signal
import time

GRACE_S = 3.0
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def _noop(signum: int, frame: object) -> None:
    """A real handler: PID 1 of a namespace drops signals whose handler is SIG_DFL."""


def reap() -> bool:
    """Reap every exited child; False when no child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def shutdown() -> None:
    """SIGTERM every process of the namespace, wait up to GRACE_S, then SIGKILL."""
    try:
        os.kill(-1, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE_S
    while reap() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return
    while reap():
        time.sleep(0.01)


def main() -> int:
    """Reap until told to stop."""
    for sig in _SIGNALS:
        signal.signal(sig, _noop)
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    while True:
        reap()
        if signal.sigwait(_SIGNALS) != signal.SIGCHLD:
            shutdown()
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
