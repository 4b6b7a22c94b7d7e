"""``hamod witness``: the arbitrator on a third host, and the nodes' client for it.

- :mod:`hamod.witness.server`: :class:`WitnessServer` (UDP, durable grants);
- :mod:`hamod.witness.client`: :class:`WitnessClient` (``request_lease``, ``release``);
- :mod:`hamod.witness.state`: the durable form of the grants;
- :mod:`hamod.witness.config`: keys directory and listen address.

The rules themselves are pure, in :mod:`hamod.core.arbiter`; the datagrams in
:mod:`hamod.proto.witness`. Guarantees, deployment and wire format: ``docs/witness.md``.
"""

from __future__ import annotations

from hamod.proto.witness import DEFAULT_PORT
from hamod.witness.client import LeaseReply, WitnessClient
from hamod.witness.server import LeaseStatus, WitnessServer, status_json
from hamod.witness.state import FileGrantStore, GrantStore

__all__ = [
    "DEFAULT_PORT",
    "FileGrantStore",
    "GrantStore",
    "LeaseReply",
    "LeaseStatus",
    "WitnessClient",
    "WitnessServer",
    "status_json",
]
