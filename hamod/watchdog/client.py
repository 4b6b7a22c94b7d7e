"""The daemon's side of the watchdog protocol: :class:`WatchdogClient`.

Owns sending ``arm`` / ``disarm`` / ``ping`` datagrams. Every call is non-blocking (one
``sendto`` on a non-blocking socket, microseconds) and never raises because of the
watchdog: a missing, dead or overloaded watchdog makes it return False and sets
:attr:`WatchdogClient.last_error` (for the daemon to report "watchdog unreachable").
Invalid arguments are the caller's bug and raise :class:`~hamod.errors.UsageError`.

    client = WatchdogClient("/run/hamod/watchdog.sock")
    ok = client.arm("web", deadline_in(4.0), [VipRef(addr="10.0.0.10")], stop_spec)
    client.disarm("web")
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from hamod.errors import UsageError
from hamod.watchdog.messages import (
    MAX_DATAGRAM,
    Arm,
    Disarm,
    Ping,
    StopSpec,
    VipRef,
    encode,
)

__all__ = ["WatchdogClient", "deadline_in"]


def deadline_in(seconds: float) -> float:
    """The CLOCK_MONOTONIC time ``seconds`` from now, as ``arm`` expects it."""
    return time.monotonic() + seconds


class WatchdogClient:
    """Talks to the watchdog listening on ``socket_path``. Thread-safe."""

    def __init__(self, socket_path: str | os.PathLike[str]) -> None:
        self.socket_path = Path(socket_path)
        self.last_error: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> WatchdogClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the socket (idempotent; the next call makes a new one)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def arm(self, module: str, deadline: float, vips: Sequence[VipRef], stop: StopSpec) -> bool:
        """Fence ``module`` unless another ``arm`` arrives before ``deadline``
        (CLOCK_MONOTONIC seconds, see :func:`deadline_in`). True if delivered."""
        try:
            message = Arm(module=module, deadline=deadline, vips=tuple(vips), stop=stop)
        except ValidationError as exc:
            raise UsageError(f"watchdog arm: {exc.errors()[0]['msg']}") from None
        return self.send(message)

    def disarm(self, module: str) -> bool:
        """``module`` is no longer primary here. True if delivered."""
        try:
            message = Disarm(module=module)
        except ValidationError as exc:
            raise UsageError(f"watchdog disarm: {exc.errors()[0]['msg']}") from None
        return self.send(message)

    def ping(self) -> bool:
        """Whether a watchdog listens on the socket (the datagram was accepted)."""
        return self.send(Ping())

    def send(self, message: Arm | Disarm | Ping) -> bool:
        """Send one message; True if the watchdog's socket accepted it."""
        data = encode(message)
        if len(data) > MAX_DATAGRAM:
            raise UsageError(f"watchdog message of {len(data)} bytes exceeds {MAX_DATAGRAM}")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX,
                        socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                    )
                self._sock.sendto(data, str(self.socket_path))
            except BlockingIOError:
                self.last_error = f"watchdog unreachable: {self.socket_path}: queue full"
                return False
            except OSError as exc:
                why = exc.strerror or str(exc)
                self.last_error = f"watchdog unreachable: {self.socket_path}: {why}"
                return False
        self.last_error = None
        return True
