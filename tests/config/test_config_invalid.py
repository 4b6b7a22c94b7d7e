# ruff: noqa: E501 - exact messages read best on one line
"""Table of invalid configurations, each with the exact problem lines it must produce.

``module`` cases are checked against docs/examples/cluster.yaml, ``alone`` cases without
a cluster file, ``cluster`` cases as cluster files. ``M``, ``F`` and ``C`` are valid
heads (mirror module, farm module, cluster file) that cases extend or alter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.config import ClusterConfig, load_cluster, parse_cluster, parse_module
from hamod.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

M = "module: m\nmode: mirror\nnodes: [n1, n2]\n"
F = "module: w\nmode: farm\nnodes: [n1, n2, n3]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 80}]}\n"
C = (
    "cluster: c\nnetworks:\n  - {name: lan, subnet: 10.0.0.0/24}\n"
    "  - {name: repl, subnet: 192.168.50.0/24, replication: true}\n"
    "nodes:\n  - {name: n1, addresses: {lan: 10.0.0.11, repl: 192.168.50.11}}\n"
    "  - {name: n2, addresses: {lan: 10.0.0.12, repl: 192.168.50.12}}\n"
)


@dataclass(frozen=True)
class Case:
    ident: str
    kind: str  # "module" (against the example cluster), "alone" (no cluster), "cluster"
    text: str
    expected: list[str]


CASES = [
    Case(
        "yaml-unclosed",
        "module",
        M + "vips: [\n",
        [
            "<file>: malformed YAML at line 5, column 1: expected the node content, but found '<stream end>'"
        ],
    ),
    Case(
        "yaml-bad-indent",
        "module",
        "module: m\n  mode: mirror\n",
        ["<file>: malformed YAML at line 2, column 7: mapping values are not allowed here"],
    ),
    Case(
        "yaml-tab",
        "module",
        "module: m\n\tmode: mirror\n",
        [
            "<file>: malformed YAML at line 2, column 1: found character '\\t' that cannot start any token"
        ],
    ),
    Case(
        "yaml-duplicate-key",
        "module",
        M + "heartbeat:\n  pulse: 1s\n  pulse: 2s\n",
        ["<file>: line 6, column 3: duplicate key 'pulse'"],
    ),
    Case(
        "yaml-non-string-key",
        "module",
        M + "farm: {weights: {1: 2}}\n",
        ["<file>: line 4, column 18: key 1 is not a string; quote it ('1')"],
    ),
    Case(
        "empty-file",
        "module",
        "",
        [
            "<file>: empty file; a cluster file starts with 'cluster: <name>', a module file with 'module: <name>'"
        ],
    ),
    Case(
        "only-comments",
        "module",
        "# nothing\n",
        [
            "<file>: empty file; a cluster file starts with 'cluster: <name>', a module file with 'module: <name>'"
        ],
    ),
    Case(
        "top-level-list",
        "module",
        "- module: m\n",
        ["<file>: expected a mapping at the top level (got a list)"],
    ),
    Case(
        "top-level-scalar",
        "module",
        "hello\n",
        ["<file>: expected a mapping at the top level (got 'hello')"],
    ),
    Case(
        "neither-kind",
        "module",
        "mode: mirror\nnodes: [n1, n2]\n",
        [
            "<file>: neither a cluster nor a module file; a cluster file starts with 'cluster: <name>', a module file with 'module: <name>'"
        ],
    ),
    Case(
        "both-kinds",
        "module",
        "cluster: c\nmodule: m\n",
        ["<file>: both 'cluster' and 'module' at the top level; a file is one or the other"],
    ),
    Case(
        "module-given-as-cluster",
        "cluster",
        M,
        ["<file>: not a cluster file (it has 'module:' at the top level)"],
    ),
    Case(
        "cluster-given-as-module",
        "module",
        C,
        ["<file>: not a module file (it has 'cluster:' at the top level)"],
    ),
    Case(
        "missing-mode",
        "module",
        "module: m\nnodes: [n1, n2]\n",
        ["mode: required field is missing"],
    ),
    Case(
        "bad-mode",
        "module",
        "module: m\nmode: mirrror\nnodes: [n1, n2]\n",
        ["mode: expected 'mirror' or 'farm' (got 'mirrror')"],
    ),
    Case(
        "bad-module-name",
        "module",
        "module: My App\nmode: mirror\nnodes: [n1, n2]\n",
        [
            "module: not a valid name; use 1-32 lowercase letters, digits, '_' or '-', starting with a letter (got 'My App')"
        ],
    ),
    Case(
        "module-name-number",
        "module",
        "module: 5\nmode: mirror\nnodes: [n1, n2]\n",
        ["module: expected a name (got 5)"],
    ),
    Case(
        "unknown-top-key",
        "module",
        M + "failovr: true\n",
        ["failovr: unknown field; did you mean 'failover'?"],
    ),
    Case(
        "unknown-key-no-hint",
        "module",
        M + "colour: red\n",
        [
            "colour: unknown field; expected one of module, mode, nodes, heartbeat, vips, replication, checkers, scripts, failover, defaultprim, maxloop, loop_interval, boot, boot_delay, farm"
        ],
    ),
    Case(
        "unknown-nested-key",
        "module",
        M + "heartbeat: {puls: 1s}\n",
        ["heartbeat.puls: unknown field; did you mean 'pulse'?"],
    ),
    Case(
        "unknown-checker-key",
        "module",
        M + "checkers: [{name: a, type: tcp, addr: 127.0.0.1, port: 80, intervall: 3s}]\n",
        ["checkers[0].intervall: unknown field; did you mean 'interval'?"],
    ),
    Case(
        "nodes-map",
        "module",
        "module: m\nmode: mirror\nnodes: {n1: x}\n",
        ["nodes: expected a list (got a mapping)"],
    ),
    Case(
        "vips-map",
        "module",
        M + "vips: {addr: 10.0.0.50}\n",
        ["vips: expected a list (got a mapping)"],
    ),
    Case(
        "heartbeat-list",
        "module",
        M + "heartbeat: [1s]\n",
        ["heartbeat: expected a mapping (got a list)"],
    ),
    Case(
        "replication-list",
        "module",
        M + "replication: [/srv]\n",
        ["replication: expected a mapping (got a list)"],
    ),
    Case(
        "bad-ipv4",
        "module",
        M + "vips: [{addr: 10.0.0.300}]\n",
        ["vips[0].addr: not an IP address (got '10.0.0.300')"],
    ),
    Case(
        "bad-ipv6",
        "module",
        M + "vips: [{addr: 'fd00::1::2'}]\n",
        ["vips[0].addr: not an IP address (got 'fd00::1::2')"],
    ),
    Case(
        "vip-with-prefix",
        "module",
        M + "vips: [{addr: 10.0.0.50/24}]\n",
        [
            "vips[0].addr: not an IP address; write the address without a prefix length (got '10.0.0.50/24')"
        ],
    ),
    Case(
        "vip-outside-subnet",
        "module",
        M + "vips: [{addr: 10.9.0.50}]\n",
        [
            "vips[0].addr: outside every subnet of the module's nodes (10.0.0.0/24, 192.168.50.0/24, fd00:10::/64) (got '10.9.0.50')"
        ],
    ),
    Case(
        "vip6-outside-subnet",
        "module",
        M + "vips: [{addr: 'fd00:99::50'}]\n",
        [
            "vips[0].addr: outside every subnet of the module's nodes (10.0.0.0/24, 192.168.50.0/24, fd00:10::/64) (got 'fd00:99::50')"
        ],
    ),
    Case(
        "vip-is-node-address",
        "module",
        M + "vips: [{addr: 10.0.0.12}]\n",
        ["vips[0].addr: is the address of node 'n2' (got '10.0.0.12')"],
    ),
    Case(
        "vip-duplicate",
        "module",
        M + "vips: [{addr: 10.0.0.50}, {addr: 10.0.0.50}]\n",
        ["vips[1].addr: duplicate virtual IP (got '10.0.0.50')"],
    ),
    Case(
        "vip-bad-interface",
        "module",
        M + "vips: [{addr: 10.0.0.50, interface: eth0/1}]\n",
        [
            "vips[0].interface: not a valid interface name (1-15 characters, no '/', ':' or spaces) (got 'eth0/1')"
        ],
    ),
    Case(
        "vip-check-on",
        "module",
        M + "vips: [{addr: 10.0.0.50, check: on}]\n",
        ["vips[0].check: expected true or false; write true (got 'on')"],
    ),
    Case(
        "announce-negative",
        "module",
        M + "vips: [{addr: 10.0.0.50, announce: {count: -1}}]\n",
        ["vips[0].announce.count: must be at least 0 (got -1)"],
    ),
    Case(
        "negative-duration",
        "module",
        M + "heartbeat: {pulse: -700ms}\n",
        ["heartbeat.pulse: duration must not be negative (got '-700ms')"],
    ),
    Case(
        "bad-duration-unit",
        "module",
        M + "heartbeat: {timeout: 30sec}\n",
        ["heartbeat.timeout: unknown duration unit 'sec'; use ms, s, m, h or d (got '30sec')"],
    ),
    Case(
        "duration-no-unit",
        "module",
        M + "heartbeat: {timeout: 30}\n",
        ["heartbeat.timeout: duration needs a unit (ms, s, m, h, d), e.g. '30s' (got 30)"],
    ),
    Case(
        "duration-garbage",
        "module",
        M + "heartbeat: {timeout: soon}\n",
        ["heartbeat.timeout: not a duration; write a number and a unit, e.g. '30s' (got 'soon')"],
    ),
    Case(
        "duration-float",
        "module",
        M + "loop_interval: 1.5\n",
        ["loop_interval: duration needs a unit, e.g. '1.5s' (got 1.5)"],
    ),
    Case(
        "duration-submillisecond",
        "module",
        M + "heartbeat: {pulse: 0.5ms}\n",
        ["heartbeat.pulse: durations are counted in whole milliseconds (got '0.5ms')"],
    ),
    Case(
        "duration-list",
        "module",
        M + "boot_delay: [1s]\n",
        ["boot_delay: expected a duration such as '30s' (got a list)"],
    ),
    Case(
        "pulse-ge-timeout",
        "module",
        M + "heartbeat: {pulse: 30s, timeout: 30s}\n",
        ["heartbeat.pulse: must be less than heartbeat.timeout (30s) (got '30s')"],
    ),
    Case(
        "pulse-zero",
        "module",
        M + "heartbeat: {pulse: 0}\n",
        ["heartbeat.pulse: must be more than 0"],
    ),
    Case(
        "derived-lease-too-short",
        "module",
        M + "heartbeat: {pulse: 700ms, timeout: 2s}\n",
        [
            "heartbeat.lease: derived lease 1s (timeout / 2) must be more than 2 × heartbeat.pulse (1.4s); set heartbeat.lease or raise heartbeat.timeout"
        ],
    ),
    Case(
        "lease-ge-timeout",
        "module",
        M + "heartbeat: {timeout: 10s, lease: 10s}\n",
        ["heartbeat.lease: must be less than heartbeat.timeout (10s) (got '10s')"],
    ),
    Case(
        "lease-le-2pulse",
        "module",
        M + "heartbeat: {pulse: 1s, timeout: 10s, lease: 2s}\n",
        ["heartbeat.lease: must be more than 2 × heartbeat.pulse (2s) (got '2s')"],
    ),
    Case(
        "heartbeat-unknown-network",
        "module",
        M + "heartbeat: {networks: [lan, wan]}\n",
        [
            "heartbeat.networks[1]: unknown network; the cluster has 'lan', 'repl', 'lan6' (got 'wan')"
        ],
    ),
    Case(
        "heartbeat-network-twice",
        "module",
        M + "heartbeat: {networks: [lan, lan]}\n",
        ["heartbeat.networks[1]: network listed twice (got 'lan')"],
    ),
    Case(
        "relative-directory",
        "module",
        M + "replication: {directories: [{path: srv/data}]}\n",
        [
            "replication.directories[0].path: not an absolute path; start it with '/' (got 'srv/data')"
        ],
    ),
    Case(
        "directory-dotdot",
        "module",
        M + "replication: {directories: [{path: /srv/../etc}]}\n",
        ["replication.directories[0].path: path must not contain '..' (got '/srv/../etc')"],
    ),
    Case(
        "directory-root",
        "module",
        M + "replication: {directories: [{path: /}]}\n",
        ["replication.directories[0].path: cannot replicate the root directory (got '/')"],
    ),
    Case(
        "directory-proc",
        "module",
        M + "replication: {directories: [{path: /proc/sys}]}\n",
        [
            "replication.directories[0].path: cannot replicate a kernel or runtime directory (got '/proc/sys')"
        ],
    ),
    Case(
        "directory-duplicate",
        "module",
        M + "replication: {directories: [{path: /srv/a}, {path: /srv/a/}]}\n",
        ["replication.directories[1].path: duplicate of replication.directories[0] (got '/srv/a')"],
    ),
    Case(
        "directory-nested",
        "module",
        M + "replication: {directories: [{path: /srv/a}, {path: /srv/a/b}]}\n",
        [
            "replication.directories[1].path: inside replication.directories[0] (/srv/a); it is replicated already (got '/srv/a/b')"
        ],
    ),
    Case(
        "directory-contains",
        "module",
        M + "replication: {directories: [{path: /srv/a/b}, {path: /srv/a}]}\n",
        [
            "replication.directories[1].path: contains replication.directories[0] (/srv/a/b) (got '/srv/a')"
        ],
    ),
    Case(
        "directories-empty",
        "module",
        M + "replication: {directories: []}\n",
        ["replication.directories: must not be empty"],
    ),
    Case(
        "exclude-plus-rule",
        "module",
        M + "replication: {directories: [{path: /srv/a, exclude: ['+ *.log']}]}\n",
        [
            "replication.directories[0].exclude[0]: write the pattern alone; every pattern here is an exclude (got '+ *.log')"
        ],
    ),
    Case(
        "region-not-power-of-two",
        "module",
        M + "replication: {directories: [{path: /srv/a}], region_size: 3MiB}\n",
        [
            "replication.region_size: region size must be a power of two from 4KiB to 8MiB (got '3MiB')"
        ],
    ),
    Case(
        "region-too-big",
        "module",
        M + "replication: {directories: [{path: /srv/a}], region_size: 16MiB}\n",
        [
            "replication.region_size: region size must be a power of two from 4KiB to 8MiB (got '16MiB')"
        ],
    ),
    Case(
        "bad-size-unit",
        "module",
        M + "replication: {directories: [{path: /srv/a}], region_size: 1MB2}\n",
        [
            "replication.region_size: not a size; write a number and a unit, e.g. '8MiB' (got '1MB2')"
        ],
    ),
    Case(
        "negative-size",
        "module",
        M + "replication: {directories: [{path: /srv/a}], region_size: -4096}\n",
        ["replication.region_size: size must not be negative (got -4096)"],
    ),
    Case(
        "bandwidth-zero",
        "module",
        M + "replication: {directories: [{path: /srv/a}], bandwidth: 0}\n",
        [
            "replication.bandwidth: a bandwidth of 0 would stop resynchronization; use null for unlimited (got 0)"
        ],
    ),
    Case(
        "bad-replication-mode",
        "module",
        M + "replication: {directories: [{path: /srv/a}], mode: synchronous}\n",
        ["replication.mode: expected 'sync', 'semisync' or 'async' (got 'synchronous')"],
    ),
    Case(
        "bad-durability",
        "module",
        M + "replication: {directories: [{path: /srv/a}], durability: always}\n",
        ["replication.durability: expected 'per-write' or 'on-sync' (got 'always')"],
    ),
    Case(
        "mirror-one-node",
        "module",
        "module: m\nmode: mirror\nnodes: [n1]\n",
        ["nodes: a mirror module runs on exactly 2 nodes, not 1"],
    ),
    Case(
        "mirror-three-nodes",
        "module",
        "module: m\nmode: mirror\nnodes: [n1, n2, n3]\n",
        ["nodes: a mirror module runs on exactly 2 nodes, not 3"],
    ),
    Case(
        "node-twice",
        "module",
        "module: m\nmode: mirror\nnodes: [n1, n1]\n",
        ["nodes[1]: node listed twice (got 'n1')"],
    ),
    Case(
        "unknown-node",
        "module",
        "module: m\nmode: mirror\nnodes: [n1, n9]\n",
        ["nodes[1]: unknown node; the cluster has 'n1', 'n2', 'n3' (got 'n9')"],
    ),
    Case(
        "unknown-defaultprim",
        "module",
        M + "defaultprim: n3\n",
        [
            "defaultprim: expected 'alone', 'lastprim' or one of the module's nodes ('n1', 'n2') (got 'n3')"
        ],
    ),
    Case(
        "failover-on",
        "module",
        M + "failover: on\n",
        ["failover: expected true or false; write true (got 'on')"],
    ),
    Case(
        "boot-yes",
        "module",
        M + "boot: yes\n",
        ["boot: expected 'ignore', 'on', 'off' or 'auto' (got 'yes')"],
    ),
    Case(
        "maxloop-negative", "module", M + "maxloop: -1\n", ["maxloop: must be at least 0 (got -1)"]
    ),
    Case(
        "maxloop-string",
        "module",
        M + "maxloop: three\n",
        ["maxloop: expected an integer (got 'three')"],
    ),
    Case(
        "farm-with-replication",
        "module",
        F + "replication: {directories: [{path: /srv/a}]}\n",
        ["replication: a farm module does not replicate; use a mirror module"],
    ),
    Case(
        "farm-without-farm",
        "module",
        "module: w\nmode: farm\nnodes: [n1, n2]\nvips: [{addr: 10.0.0.60}]\n",
        ["farm: a farm module needs a 'farm' section with its rules"],
    ),
    Case(
        "farm-without-vip",
        "module",
        "module: w\nmode: farm\nnodes: [n1, n2]\nfarm: {rules: [{port: 80}]}\n",
        ["vips: a farm module needs at least one virtual IP"],
    ),
    Case(
        "farm-defaultprim",
        "module",
        F + "defaultprim: n1\n",
        ["defaultprim: only for mirror modules"],
    ),
    Case(
        "farm-bad-hash",
        "module",
        "module: w\nmode: farm\nnodes: [n1]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 80, hash: on_ip}]}\n",
        ["farm.rules[0].hash: expected 'on_addr' or 'on_port' (got 'on_ip')"],
    ),
    Case(
        "farm-bad-port",
        "module",
        "module: w\nmode: farm\nnodes: [n1]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 0}]}\n",
        ["farm.rules[0].port: not a port number (1-65535) (got 0)"],
    ),
    Case(
        "farm-weight-unknown-node",
        "module",
        "module: w\nmode: farm\nnodes: [n1, n2]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 80}], weights: {n3: 2}}\n",
        ["farm.weights.n3: not one of the module's nodes (got 'n3')"],
    ),
    Case(
        "farm-weight-zero",
        "module",
        "module: w\nmode: farm\nnodes: [n1, n2]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 80}], weights: {n1: 0}}\n",
        ["farm.weights: weight of 'n1' must be from 1 to 1000 (got 0)"],
    ),
    Case(
        "farm-duplicate-rule",
        "module",
        "module: w\nmode: farm\nnodes: [n1]\nvips: [{addr: 10.0.0.60}]\nfarm: {rules: [{port: 80}, {port: 80, proto: tcp}]}\n",
        ["farm.rules[1]: duplicate rule for 80/tcp"],
    ),
    Case(
        "mirror-with-farm",
        "module",
        M + "farm: {rules: [{port: 80}]}\n",
        ["farm: only a farm module has a 'farm' section"],
    ),
    Case(
        "checker-bad-action",
        "module",
        M + "checkers: [{name: a, type: tcp, addr: 127.0.0.1, port: 80, action: reboot}]\n",
        [
            "checkers[0].action: expected 'restart', 'stopstart', 'stop', 'wait', 'swap' or 'noaction' (got 'reboot')"
        ],
    ),
    Case(
        "checker-bad-type",
        "module",
        M + "checkers: [{name: a, type: tcpp}]\n",
        [
            "checkers[0]: unknown type; expected 'process', 'tcp', 'http', 'ping', 'interface', 'vip', 'custom' or 'module'"
        ],
    ),
    Case(
        "checker-no-type",
        "module",
        M + "checkers: [{name: a}]\n",
        ["checkers[0]: 'type' is missing"],
    ),
    Case(
        "checker-not-a-map",
        "module",
        M + "checkers: [postgres]\n",
        ["checkers[0]: expected a mapping (got 'postgres')"],
    ),
    Case(
        "checker-timeout-ge-interval",
        "module",
        M
        + "checkers: [{name: a, type: tcp, addr: 127.0.0.1, port: 80, interval: 3s, timeout: 5s}]\n",
        ["checkers[0].timeout: must be less than interval (3s) (got '5s')"],
    ),
    Case(
        "checker-duplicate-name",
        "module",
        M + "checkers: [{name: a, type: interface, interface: eth0}, {name: a, type: vip}]\n",
        [
            "checkers[1].name: duplicate checker name (got 'a')",
            "checkers[1]: vip checker in a module without vips",
        ],
    ),
    Case(
        "checker-missing-fields",
        "module",
        M + "checkers: [{name: a, type: tcp}]\n",
        [
            "checkers[0].addr: required field is missing",
            "checkers[0].port: required field is missing",
        ],
    ),
    Case(
        "process-both-matchers",
        "module",
        M + "checkers: [{name: a, type: process, process: x, regex: y}]\n",
        ["checkers[0]: give one of 'process' (a name) or 'regex', not both"],
    ),
    Case(
        "process-no-matcher",
        "module",
        M + "checkers: [{name: a, type: process}]\n",
        ["checkers[0]: give 'process' (a name), 'regex' or 'script' (start_prim...)"],
    ),
    Case(
        "process-atmax-lt-atleast",
        "module",
        M + "checkers: [{name: a, type: process, process: x, atleast: 2, atmax: 1}]\n",
        ["checkers[0]: atmax (1) is less than atleast (2)"],
    ),
    Case(
        "http-bad-url",
        "module",
        M + "checkers: [{name: a, type: http, url: 'ftp://x/'}]\n",
        ["checkers[0].url: not an http:// or https:// URL (got 'ftp://x/')"],
    ),
    Case(
        "http-bad-status",
        "module",
        M + "checkers: [{name: a, type: http, url: 'http://x/', status: 700}]\n",
        ["checkers[0].status: must be at most 599 (got 700)"],
    ),
    Case(
        "ping-empty",
        "module",
        M + "checkers: [{name: a, type: ping, addresses: []}]\n",
        ["checkers[0].addresses: must not be empty"],
    ),
    Case(
        "ping-bad-address",
        "module",
        M + "checkers: [{name: a, type: ping, addresses: [10.0.0.1, router]}]\n",
        ["checkers[0].addresses[1]: not an IP address (got 'router')"],
    ),
    Case(
        "checker-bad-when",
        "module",
        M + "checkers: [{name: a, type: interface, interface: eth0, when: [PRIM, LEADER]}]\n",
        ["checkers[0].when[1]: expected 'PRIM', 'ALONE', 'SECOND' or 'UP' (got 'LEADER')"],
    ),
    Case(
        "checker-when-up-in-mirror",
        "module",
        M + "checkers: [{name: a, type: interface, interface: eth0, when: [UP]}]\n",
        ["checkers[0].when: state UP does not exist in a mirror module (got 'UP')"],
    ),
    Case(
        "checker-swap-in-farm",
        "module",
        F + "checkers: [{name: a, type: interface, interface: eth0, action: swap}]\n",
        ["checkers[0].action: swap is for mirror modules (got 'swap')"],
    ),
    Case(
        "custom-relative-program",
        "module",
        M + "checkers: [{name: a, type: custom, program: check.sh}]\n",
        ["checkers[0].program: not an absolute path; start it with '/' (got 'check.sh')"],
    ),
    Case(
        "custom-args-without-program",
        "module",
        M + "checkers: [{name: a, type: custom, args: [-v]}]\n",
        ["checkers[0]: 'args' given without 'program'"],
    ),
    Case(
        "module-checker-self",
        "module",
        M + "checkers: [{name: a, type: module, module: m}]\n",
        ["checkers[0].module: a module cannot depend on itself"],
    ),
    Case(
        "module-checker-unknown-node",
        "module",
        M + "checkers: [{name: a, type: module, module: db, node: n7}]\n",
        ["checkers[0].node: unknown node; the cluster has 'n1', 'n2', 'n3' (got 'n7')"],
    ),
    Case(
        "vip-checker-unknown-vip",
        "module",
        M + "vips: [{addr: 10.0.0.50}]\ncheckers: [{name: a, type: vip, addr: 10.0.0.51}]\n",
        ["checkers[0].addr: not one of the module's vips (got '10.0.0.51')"],
    ),
    Case(
        "fail-after-zero",
        "module",
        M + "checkers: [{name: a, type: interface, interface: eth0, fail_after: 0}]\n",
        ["checkers[0].fail_after: must be at least 1 (got 0)"],
    ),
    Case(
        "scripts-relative",
        "module",
        M + "scripts: {directory: scripts}\n",
        ["scripts.directory: not an absolute path; start it with '/' (got 'scripts')"],
    ),
    Case(
        "alone-unknown-node-not-checked",
        "alone",
        "module: m\nmode: mirror\nnodes: [n1, x9]\nvips: [{addr: 10.9.9.9}]\ndefaultprim: x8\n",
        [
            "defaultprim: expected 'alone', 'lastprim' or one of the module's nodes ('n1', 'x9') (got 'x8')"
        ],
    ),
    Case(
        "cluster-host-bits",
        "cluster",
        C.replace("10.0.0.0/24", "10.0.0.1/24"),
        [
            "networks[0].subnet: host bits set in subnet; did you mean '10.0.0.0/24'? (got '10.0.0.1/24')"
        ],
    ),
    Case(
        "cluster-subnet-no-prefix",
        "cluster",
        C.replace("10.0.0.0/24", "10.0.0.0"),
        [
            "networks[0].subnet: not a subnet; write it with its prefix length, e.g. '10.0.0.0/24' (got '10.0.0.0')"
        ],
    ),
    Case(
        "cluster-no-replication-network",
        "cluster",
        C.replace(", replication: true", ""),
        ["networks: no network has 'replication: true'; mark exactly one"],
    ),
    Case(
        "cluster-two-replication-networks",
        "cluster",
        C.replace("subnet: 10.0.0.0/24}", "subnet: 10.0.0.0/24, replication: true}"),
        ["networks[1].replication: only one network may carry replication; 'lan' already does"],
    ),
    Case(
        "cluster-overlapping-subnets",
        "cluster",
        C.replace("192.168.50.0/24", "10.0.0.0/16").replace("192.168.50.1", "10.0.1.1"),
        [
            "networks[1].subnet: overlaps the subnet of network 'lan' (networks[0]) (got '10.0.0.0/16')"
        ],
    ),
    Case(
        "cluster-duplicate-network",
        "cluster",
        C.replace("name: repl", "name: lan"),
        [
            "networks[1].name: duplicate network name (got 'lan')",
            "nodes[0].addresses.repl: unknown network; networks are 'lan'",
            "nodes[1].addresses.repl: unknown network; networks are 'lan'",
        ],
    ),
    Case(
        "cluster-address-outside-subnet",
        "cluster",
        C.replace("lan: 10.0.0.12", "lan: 10.0.1.12"),
        [
            "nodes[1].addresses.lan: not in the subnet 10.0.0.0/24 of network 'lan' (got '10.0.1.12')"
        ],
    ),
    Case(
        "cluster-duplicate-node-name",
        "cluster",
        C.replace("name: n2", "name: n1"),
        ["nodes[1].name: duplicate node name (got 'n1')"],
    ),
    Case(
        "cluster-duplicate-address",
        "cluster",
        C.replace("lan: 10.0.0.12", "lan: 10.0.0.11"),
        ["nodes[1].addresses.lan: address already used by node 'n1' (got '10.0.0.11')"],
    ),
    Case(
        "cluster-address-unknown-network",
        "cluster",
        C.replace("repl: 192.168.50.12", "rep: 192.168.50.12"),
        ["nodes[1].addresses.rep: unknown network; networks are 'lan', 'repl'"],
    ),
    Case(
        "cluster-reserved-node-name",
        "cluster",
        C.replace("name: n2", "name: alone"),
        ["nodes[1].name: reserved word, not a node name (got 'alone')"],
    ),
    Case(
        "cluster-bad-node-name",
        "cluster",
        C.replace("name: n2", "name: n_2"),
        [
            "nodes[1].name: not a valid node name; use a host name: letters, digits and '-' (got 'n_2')"
        ],
    ),
    Case(
        "cluster-witness-is-node",
        "cluster",
        C + "witness: {arbitrator: {address: 10.0.0.12}}\n",
        [
            "witness.arbitrator.address: is the address of node 'n2'; the arbitrator must run on a third host (got '10.0.0.12')"
        ],
    ),
    Case(
        "cluster-ping-witness-is-node",
        "cluster",
        C + "witness: {ping: [10.0.0.1, 192.168.50.11]}\n",
        [
            "witness.ping[1]: is the address of node 'n1'; a witness must be a third host (got '192.168.50.11')"
        ],
    ),
    Case(
        "cluster-two-witnesses",
        "cluster",
        C + "witness: {ping: [10.0.0.1], arbitrator: {address: 10.0.0.5}}\n",
        ["witness: choose one witness: 'ping' or 'arbitrator', not both"],
    ),
    Case(
        "cluster-empty-witness",
        "cluster",
        C + "witness: {}\n",
        ["witness: empty witness; give 'ping' or 'arbitrator', or remove 'witness'"],
    ),
    Case(
        "cluster-unknown-witness-kind",
        "cluster",
        C + "witness: {quorum: [10.0.0.5]}\n",
        ["witness.quorum: unknown field; expected one of ping, arbitrator"],
    ),
    Case(
        "cluster-relative-key",
        "cluster",
        C + "key: cluster.key\n",
        ["key: not an absolute path; start it with '/' (got 'cluster.key')"],
    ),
    Case(
        "cluster-tls-unknown",
        "cluster",
        C + "tls: {ca: /etc/ca.crt, certificate: /etc/n.crt}\n",
        ["tls.certificate: unknown field; expected one of ca, cert, key"],
    ),
    Case(
        "cluster-bad-api-port",
        "cluster",
        C + "api_port: 70000\n",
        ["api_port: not a port number (1-65535) (got 70000)"],
    ),
    Case(
        "cluster-api-port-string",
        "cluster",
        C + "api_port: '9010'\n",
        ["api_port: expected an integer (got '9010')"],
    ),
    Case(
        "cluster-nodes-empty",
        "cluster",
        "cluster: c\nnetworks: [{name: lan, subnet: 10.0.0.0/24, replication: true}]\nnodes: []\n",
        ["nodes: must not be empty"],
    ),
    Case(
        "cluster-node-no-addresses",
        "cluster",
        "cluster: c\nnetworks: [{name: lan, subnet: 10.0.0.0/24, replication: true}]\nnodes: [{name: n1, addresses: {}}]\n",
        ["nodes[0].addresses: must not be empty"],
    ),
    Case(
        "cluster-addresses-list",
        "cluster",
        "cluster: c\nnetworks: [{name: lan, subnet: 10.0.0.0/24, replication: true}]\nnodes: [{name: n1, addresses: [10.0.0.1]}]\n",
        ["nodes[0].addresses: expected a mapping (got a list)"],
    ),
    Case(
        "cluster-replication-yes",
        "cluster",
        C.replace("replication: true", "replication: yes"),
        ["networks[1].replication: expected true or false; write true (got 'yes')"],
    ),
]


@pytest.fixture(scope="module")
def cluster() -> ClusterConfig:
    return load_cluster(EXAMPLES / "cluster.yaml")


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 50
    assert len({c.ident for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.ident for c in CASES])
def test_invalid(case: Case, cluster: ClusterConfig) -> None:
    with pytest.raises(ConfigError) as info:
        if case.kind == "cluster":
            parse_cluster(case.text, "f.yaml")
        else:
            parse_module(case.text, cluster if case.kind == "module" else None, "f.yaml")
    assert [str(p) for p in info.value.problems] == case.expected
    assert str(info.value) == "\n".join(f"f.yaml: {line}" for line in case.expected)


@pytest.mark.parametrize("case", CASES, ids=[c.ident for c in CASES])
def test_no_pydantic_wording(case: Case, cluster: ClusterConfig) -> None:
    for line in case.expected:
        assert "pydantic" not in line and "errors.pydantic.dev" not in line
        assert "Input should" not in line and "Value error" not in line
