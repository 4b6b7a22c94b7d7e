"""Wire formats spoken between hamod nodes. Pure: bytes in, values out; no sockets, no
clock, no logging.

- :mod:`hamod.proto.wire`: the byte reader/writer every format is built on.
- :mod:`hamod.proto.heartbeat`: the heartbeat datagram (values, encoder, versions, MAC).
- :mod:`hamod.proto.replay`: the freshness rule (sliding window + epoch echo).
- :mod:`hamod.proto.decoder`: :class:`Decoder`, which turns any datagram into a fresh,
  authentic :class:`Heartbeat` or a counted :class:`Drop` and never raises.

The layout, the authentication, the replay rule and the versioning are described in
``docs/protocol.md``.
"""

from __future__ import annotations

from hamod.proto.decoder import Decoder, Drop, DropReason
from hamod.proto.heartbeat import (
    MAX_DATAGRAM,
    MIN_VERSION,
    PROTOCOL_VERSION,
    Echo,
    Generation,
    GenId,
    Heartbeat,
    ModuleAnnouncement,
    ModuleFlags,
    ModuleState,
    Phase,
    accepted_versions,
    choose_send_version,
    encode,
)

__all__ = [
    "MAX_DATAGRAM",
    "MIN_VERSION",
    "PROTOCOL_VERSION",
    "Decoder",
    "Drop",
    "DropReason",
    "Echo",
    "GenId",
    "Generation",
    "Heartbeat",
    "ModuleAnnouncement",
    "ModuleFlags",
    "ModuleState",
    "Phase",
    "accepted_versions",
    "choose_send_version",
    "encode",
]
