"""Naming what differs when the peer announces another configuration hash.

Heartbeats carry only (the first 32 digits of) each module's config hash, so a mismatch
is detected there. To say *what* differs, the daemon fetches the peer's canonical
configuration over the mutual-TLS API (``GET /api/v1/modules/{name}/config``) and
compares it with its own, field by field (:func:`hamod.config.identity.diff_fields`).
This is diagnostics only: the core refuses the peer on the hash alone (rule 9).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hamod.api.models import ModuleConfigDump
from hamod.config import ClusterConfig, ModuleConfig
from hamod.config.identity import canonical_json, diff_fields, flatten
from hamod.errors import HamodError

#: At most this many differing fields are named (with both values); the rest are counted.
SHOWN = 4


def canonical_config(module: ModuleConfig, cluster: ClusterConfig | None) -> dict[str, Any]:
    """The canonical dump the config hash is computed from (``{"cluster", "module"}``)."""
    return {
        "cluster": json.loads(canonical_json(cluster)) if cluster is not None else None,
        "module": json.loads(canonical_json(module)),
    }


def _name(path: str) -> str:
    """``module.heartbeat.timeout`` → ``heartbeat.timeout`` (the module file's field);
    cluster fields keep their ``cluster.`` prefix."""
    return path.removeprefix("module.")


def explain(ours: Mapping[str, Any], theirs: Mapping[str, Any], peer: str) -> str:
    """``differing fields: heartbeat.timeout (ours 2s, n1's 1s)`` — or why none shows."""
    paths = diff_fields(dict(ours), dict(theirs))
    if not paths:
        return (
            f"no field differs from {peer}'s configuration, yet the hashes do "
            "(another hamod version hashing differently?)"
        )
    fo, ft = flatten(dict(ours)), flatten(dict(theirs))

    def value(flat: Mapping[str, object], path: str) -> str:
        return json.dumps(flat[path]) if path in flat else "absent"

    shown = [f"{_name(p)} (ours {value(fo, p)}, {peer}'s {value(ft, p)})" for p in paths[:SHOWN]]
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    return "differing fields: " + ", ".join(shown) + more


async def fetch(
    cluster: ClusterConfig, peer: str, module: str, networks: Sequence[str], timeout: float
) -> ModuleConfigDump:
    """The peer's canonical configuration of ``module``, over mutual TLS: its addresses
    on ``networks`` first, then its other ones. Raises :class:`HamodError` (the last
    failure) when none answers."""
    from hamod.cli.client import Client  # the API client: imported when needed only

    node = cluster.node(peer)
    if node is None:
        raise HamodError(f"{peer} is not a node of the cluster file")
    tls = cluster.tls
    files = [Path(str(p)) for p in (tls.ca, tls.cert, tls.key)]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise HamodError(f"no TLS files to ask {peer} ({', '.join(missing)})")
    order = [n for n in networks if n in node.addresses]
    order += [n for n in node.addresses if n not in order]
    addresses = list(dict.fromkeys(str(node.addresses[n]) for n in order))
    error: HamodError = HamodError(f"{peer} has no address")
    for address in addresses:
        client = Client.remote(address, cluster.api_port, *files, node=peer, server_name=peer,
                               timeout=timeout)  # fmt: skip
        try:
            async with client:
                return await client.module_config(module)
        except HamodError as exc:
            error = exc
    raise error
