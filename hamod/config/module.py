"""Module files: one protected application per file, ``mode: mirror`` or ``mode: farm``.

The models here hold what a SafeKit user configures in ``userconfig.xml`` (heartbeats,
virtual IPs, replicated directories, checkers, scripts, failover policy, farm load
balancing), with SafeKit's defaults where they make sense. Field descriptions are the
user documentation: ``python -m hamod.config.docs`` turns them into
``docs/config-reference.md``. Cross-field checks live in :mod:`hamod.config.crosscheck`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from hamod.config.checkers import Checker
from hamod.config.types import (
    AbsPath,
    Address,
    Bool,
    IfNameOrAuto,
    Model,
    Name,
    NodeName,
    Port,
    StrictInt,
    StrictStr,
    fail,
)
from hamod.config.units import Duration, DurationField, Rate, RateField, Size, SizeField

__all__ = [
    "Announce",
    "Directory",
    "Farm",
    "FarmRule",
    "Heartbeat",
    "ModuleConfig",
    "Replication",
    "Scripts",
    "StopTimeouts",
    "Vip",
]


class Heartbeat(Model):
    """How the nodes of the module watch each other."""

    pulse: DurationField = Field(
        default=Duration(0.7),
        description="Interval between two heartbeats on each network (SafeKit: 700ms).",
    )
    timeout: DurationField = Field(
        default=Duration(30.0),
        description="The peer is lost when no heartbeat arrived on any network for this "
        "long (SafeKit: 30s). Failover time = timeout + application start. Tight settings "
        "such as `pulse: 100ms`, `timeout: 1s` are supported on a quiet LAN.",
    )
    lease: DurationField | None = Field(
        default=None,
        description="With the arbitrator witness, how long a primary may serve without "
        "renewing its lease. Must be more than 2 × pulse and less than timeout, so a "
        "primary cut from everyone stops serving before its peer can take over. "
        "Null: timeout / 2.",
    )
    networks: tuple[Name, ...] | None = Field(
        default=None,
        min_length=1,
        description="Cluster networks carrying heartbeats (each one is one SafeKit "
        "`<heartbeat>`). Null: every network of the cluster where all the module's nodes "
        "have an address. The peer is lost only when all of them are silent.",
    )

    @property
    def effective_lease(self) -> Duration:
        """``lease``, or its default timeout / 2."""
        return self.lease if self.lease is not None else Duration.from_ms(self.timeout.ms // 2)


class Announce(Model):
    """Gratuitous ARP (IPv4) / unsolicited neighbour advertisements (IPv6) sent when the
    VIP is brought up, so switches and clients learn its new location at once."""

    count: StrictInt = Field(default=5, ge=0, description="How many to send (0: none).")
    interval: DurationField = Field(default=Duration(1.0), description="Time between two.")


class Vip(Model):
    """A virtual IP address that follows the application (SafeKit `<virtual_addr>`)."""

    addr: Address = Field(
        description="The virtual IP, IPv4 or IPv6. It must be in the subnet of one of the "
        "cluster networks of the module's nodes; clients use it (or its DNS name)."
    )
    interface: IfNameOrAuto = Field(
        default="auto",
        description="Interface carrying the VIP; `auto`: the interface holding the node's "
        "address in the VIP's subnet. Its prefix length is that subnet's.",
    )
    announce: Announce = Field(
        default_factory=Announce, description="Gratuitous ARP / unsolicited NA."
    )
    check: Bool = Field(
        default=True,
        description="Watch that the VIP stays configured; if it disappears, the module "
        'is stop-started (fails over from a primary), like SafeKit\'s `check="on"`.',
    )


def _pattern(value: str) -> str:
    if not value or value != value.strip():
        raise fail("empty pattern, or spaces around it")
    if value[:2] in ("+ ", "- "):
        raise fail("write the pattern alone; every pattern here is an exclude")
    if any(ord(c) < 32 for c in value):
        raise fail("pattern contains a control character")
    return value


class Directory(Model):
    """A replicated directory. It stays where it is and may be on the system disk."""

    path: AbsPath = Field(description="Absolute path of the directory, the same on both nodes.")
    exclude: tuple[Annotated[StrictStr, AfterValidator(_pattern)], ...] = Field(
        default=(),
        description="Paths not replicated, as lsyncd/rsync exclude patterns relative to "
        "the directory: `*.tmp`, `/pg_stat_tmp/` (a leading `/` anchors at the directory, "
        "a trailing `/` matches directories only, `**` crosses directories).",
    )


class Replication(Model):
    """Real-time replication of the application's directories (mirror modules only)."""

    directories: tuple[Directory, ...] = Field(
        min_length=1,
        description="The directories to replicate. For a database: data *and* logs (WAL).",
    )
    mode: Literal["sync", "semisync", "async"] = Field(
        default="sync",
        description="`sync` (default): a write is acknowledged only once the secondary has "
        "applied it, and an fsync returns only once it is on the secondary's disk too: no "
        "acknowledged write is lost when one node fails, and nothing that was synced is lost "
        "even when both fail at once (RPO = 0). `semisync` (SafeKit's default, an opt-in "
        "here): acknowledged once the secondary has received it — one node failing loses "
        "nothing, both failing at once can lose what the secondary had not yet written. "
        "`async` (distant sites): not waited for; a failover can lose the reported lag.",
    )
    durability: Literal["per-write", "on-sync"] = Field(
        default="per-write",
        description="`per-write` (default): every write() is replicated, per `mode`, before "
        "it returns. `on-sync`: write() may return first and the data is replicated before "
        "fsync/fdatasync/close/msync return — faster for applications that sync what "
        "matters, as databases do. O_SYNC/O_DSYNC/O_DIRECT writes are always per-write.",
    )
    bandwidth: RateField | None = Field(
        default=None,
        description="Cap on resynchronization traffic, a size per second (`100MiB`); null: "
        "unlimited (SafeKit's `reiallowedbw`). Live mirroring is never capped.",
    )
    region_size: SizeField = Field(
        default=Size(1 << 20),
        description="Granularity of change tracking: after an outage only the regions "
        "written meanwhile are copied. A power of two, from 4KiB to 8MiB.",
    )
    port: Port = Field(
        default=9013,
        description="TCP port of the module's replication link (mutual TLS); the next "
        "port carries full copies (rsync). Each replicated module of a node needs its own.",
    )
    link_timeout: DurationField = Field(
        default=Duration(30.0),
        description="A secondary that has not acknowledged for this long is dropped: the "
        "primary goes ALONE and keeps serving (SafeKit's `sendtimeout`).",
    )

    @field_validator("region_size")
    @classmethod
    def _power_of_two(cls, value: Size) -> Size:
        if value < 4096 or value > 8 << 20 or value & (value - 1):
            raise fail("region size must be a power of two from 4KiB to 8MiB")
        return value

    @field_validator("bandwidth")
    @classmethod
    def _positive_rate(cls, value: Rate | None) -> Rate | None:
        if value is not None and value == 0:
            raise fail("a bandwidth of 0 would stop resynchronization; use null for unlimited")
        return value


class StopTimeouts(Model):
    """How long stop scripts may run (SafeKit's nicestoptimeout / forcestoptimeout)."""

    nice: DurationField = Field(
        default=Duration(300.0),
        description="Time given to a graceful stop (`stop_prim <cur> <next> stop`).",
    )
    force: DurationField = Field(
        default=Duration(300.0),
        description="Time given to the second, forced call (`... force`) before the "
        "application's processes are killed.",
    )


class Scripts(Model):
    """The module's scripts (`start_prim`, `stop_prim`, `start_both`, ...)."""

    directory: AbsPath | None = Field(
        default=None,
        description="Directory holding the scripts; null: `/etc/hamod/modules/<module>/scripts`.",
    )
    stop_timeout: StopTimeouts = Field(
        default_factory=StopTimeouts, description="Stop script timeouts."
    )

    def resolved_directory(self, module: str) -> PurePosixPath:
        """``directory`` or its default for ``module``."""
        return self.directory or PurePosixPath(f"/etc/hamod/modules/{module}/scripts")


class FarmRule(Model):
    """Traffic to the VIP that the farm load-balances (SafeKit `<rule>`)."""

    port: Port = Field(description="Destination port.")
    proto: Literal["tcp", "udp"] = Field(default="tcp", description="Protocol.")
    hash: Literal["on_addr", "on_port"] = Field(
        default="on_addr",
        description="`on_addr`: a client address always reaches the same node (sessions "
        "stick). `on_port`: client address and port, spreading one client's connections.",
    )


class Farm(Model):
    """Load balancing of the VIP over the farm's nodes, without a load balancer."""

    rules: tuple[FarmRule, ...] = Field(
        min_length=1, description="The ports and protocols balanced over the nodes."
    )
    weights: dict[NodeName, StrictInt] = Field(
        default_factory=dict,
        description="Relative share of the load per node (`{n1: 2, n2: 1}`); nodes not "
        "listed weigh 1 (SafeKit's `power`).",
    )

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for node, weight in value.items():
            if not 1 <= weight <= 1000:
                raise fail(f"weight of '{node}' must be from 1 to 1000 (got {weight})")
        return value

    def weight(self, node: str) -> int:
        """The weight of ``node`` (1 when not listed)."""
        return self.weights.get(node, 1)


class ModuleConfig(Model):
    """A module file (top-level key `module:`)."""

    module: Name = Field(description="Name of the module; makes a file a module file.")
    mode: Literal["mirror", "farm"] = Field(
        description="`mirror`: 2 nodes, replication and failover. `farm`: N nodes sharing "
        "the load of one VIP, with failover."
    )
    nodes: tuple[NodeName, ...] = Field(
        min_length=1,
        description="Cluster nodes running the module: exactly 2 for a mirror, 1 or more "
        "for a farm.",
    )
    heartbeat: Heartbeat = Field(default_factory=Heartbeat, description="Heartbeats.")
    vips: tuple[Vip, ...] = Field(default=(), description="Virtual IPs (a farm needs one).")
    replication: Replication | None = Field(
        default=None, description="Replicated directories (mirror only)."
    )
    checkers: tuple[Checker, ...] = Field(
        default=(),
        description="Checkers, each with a `type`: process, tcp, http, ping, interface, "
        "vip, custom, module.",
    )
    scripts: Scripts = Field(default_factory=Scripts, description="User scripts.")
    failover: Bool = Field(
        default=True,
        description="Mirror: when the primary fails, the secondary takes over. false: it "
        "goes WAIT until an admin runs `hamod prim` (toggle at runtime: `hamod failover`).",
    )
    defaultprim: StrictStr = Field(
        default="alone",
        description="Mirror failback: `alone` (the survivor stays primary, no swap), "
        "`lastprim` (a restarted node is primary if it was primary before it stopped), "
        "or a node name (after resynchronization, roles swap back to that node).",
    )
    maxloop: StrictInt = Field(
        default=3,
        ge=0,
        description="Automatic actions (restart, stopstart, wait) allowed per "
        "`loop_interval`; the next one stops the module on this node.",
    )
    loop_interval: DurationField = Field(
        default=Duration(86400.0),
        description="Window of the `maxloop` counter; 0 disables the counter.",
    )
    boot: Literal["ignore", "on", "off", "auto"] = Field(
        default="ignore",
        description="Start at boot: `on` always, `off` never, `auto` if it was running "
        "before the reboot, `ignore`: as set on each node by `hamod boot on|off`.",
    )
    boot_delay: DurationField = Field(
        default=Duration(0.0), description="Delay before the start at boot."
    )
    farm: Farm | None = Field(default=None, description="Load balancing (farm only).")
