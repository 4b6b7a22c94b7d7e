"""The per-node watchdog: a separate tiny process that fences a primary whose daemon
stopped renewing (hung, or killed and not restarted in time), before the peer's
takeover can begin. See docs/watchdog.md.

- :mod:`~hamod.watchdog.messages`: the datagram protocol (pydantic models).
- :mod:`~hamod.watchdog.state`: the pure part: armed modules, deadlines, counters.
- :mod:`~hamod.watchdog.fence`: removing the VIPs, then ``stop_prim force``, with retries.
- :mod:`~hamod.watchdog.pidwatch`: noticing that the daemon's pid is gone.
- :mod:`~hamod.watchdog.server`, :mod:`~hamod.watchdog.main`: the process.
- :mod:`~hamod.watchdog.client`: :class:`WatchdogClient`, used by the daemon.
"""

from hamod.watchdog.client import WatchdogClient, deadline_in
from hamod.watchdog.messages import PROTOCOL_VERSION, Arm, Disarm, Ping, StopEnv, StopSpec, VipRef

__all__ = [
    "PROTOCOL_VERSION",
    "Arm",
    "Disarm",
    "Ping",
    "StopEnv",
    "StopSpec",
    "VipRef",
    "WatchdogClient",
    "deadline_in",
]
