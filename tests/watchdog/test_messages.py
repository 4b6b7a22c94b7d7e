"""The watchdog protocol: valid messages round-trip; every bad datagram is refused with
a reason naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hamod.errors import UsageError
from hamod.watchdog.messages import (
    MAX_DATAGRAM,
    PROTOCOL_VERSION,
    Arm,
    Disarm,
    Ping,
    StopEnv,
    StopSpec,
    VipRef,
    decode,
    encode,
)

ENV: dict[str, Any] = {"home": "/opt/hamod", "bin": "/opt/hamod/bin", "var": "/var/lib/hamod"}
ENV |= {"user_var": "/var/lib/hamod/web", "user_conf": "/etc/hamod/modules/web"}
STOP: dict[str, Any] = {"bin_dir": "/etc/hamod/web/bin", "log_dir": "/var/log/hamod/web"}
STOP |= {"nice_timeout": 10, "force_timeout": 5, "env": ENV}


def arm(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"version": 1, "type": "arm", "module": "web", "deadline": 123.5}
    base |= {"vips": [{"addr": "10.0.0.10", "netns": None}], "stop": STOP}
    return base | changes


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_arm_round_trips_and_ignores_unknown_fields() -> None:
    message = decode(raw(arm(future_field={"x": 1})))
    assert isinstance(message, Arm)
    assert message.vips == (VipRef(addr="10.0.0.10"),)
    assert message.stop.state == "PRIM" and message.stop.env.user_vars == {}
    assert decode(encode(message)) == message


def test_models_build_the_same_datagram_as_raw_json() -> None:
    built = Arm(
        module="web",
        deadline=123.5,
        vips=(VipRef(addr="10.0.0.10"),),
        stop=StopSpec(
            bin_dir="/etc/hamod/web/bin",
            log_dir="/var/log/hamod/web",
            nice_timeout=10,
            force_timeout=5,
            env=StopEnv(**ENV),
        ),
    )
    assert decode(encode(built)) == decode(raw(arm()))
    assert json.loads(encode(built))["version"] == PROTOCOL_VERSION


def test_disarm_and_ping() -> None:
    assert decode(raw({"version": 1, "type": "disarm", "module": "web"})) == Disarm(module="web")
    assert decode(raw({"version": 1, "type": "ping"})) == Ping()


def test_ipv6_vip_in_a_namespace_is_normalized() -> None:
    message = decode(raw(arm(vips=[{"addr": "FD00:0::10", "netns": "blue"}])))
    assert isinstance(message, Arm)
    assert message.vips == (VipRef(addr="fd00::10", netns="blue"),)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", r"not JSON"),
        (b"{not json", r"not JSON"),
        (b"[1, 2]", r"not a JSON object but list"),
        (raw({"type": "ping"}), r"^version: missing"),
        (raw({"version": 2, "type": "ping"}), r"unsupported protocol version 2 .*speaks 1"),
        (raw({"version": "1", "type": "ping"}), r"unsupported protocol version '1'"),
        (raw({"version": True, "type": "ping"}), r"unsupported protocol version True"),
        (raw({"version": 1}), r"^type: missing"),
        (raw({"version": 1, "type": "reboot"}), r"^type: unknown message type 'reboot'"),
        (raw({"version": 1, "type": "disarm"}), r"^module: Field required"),
        (raw(arm(module="Web")), r"^module: not a module name"),
        (raw(arm(module="web; rm -rf /")), r"^module: not a module name"),
        (raw(arm(deadline="soon")), r"^deadline: Input should be a valid number"),
        (raw(arm(deadline=-1)), r"^deadline: Input should be greater than or equal to 0"),
        (b'{"version":1,"type":"arm","deadline":Infinity}', r"not JSON: Infinity"),
        (raw(arm(vips=[{"addr": "10.0.0.300"}])), r"^vips\.0\.addr: not an IPv4 or IPv6"),
        (raw(arm(vips=[{"addr": "10.0.0.1", "netns": "../x"}])), r"vips\.0\.netns: not a"),
        (raw(arm(stop=None)), r"^stop: "),
        (raw(arm(stop=STOP | {"bin_dir": "bin"})), r"^stop\.bin_dir: not an absolute path"),
        (raw(arm(stop=STOP | {"log_dir": "/a/../b"})), r"^stop\.log_dir: .*'\.\.'"),
        (raw(arm(stop=STOP | {"nice_timeout": 0})), r"^stop\.nice_timeout: .*greater than 0"),
        (raw(arm(stop=STOP | {"state": "SECOND"})), r"^stop\.state: "),
        (raw(arm(stop=STOP | {"env": ENV | {"user_vars": {"1X": "a"}}})), r"stop\.env\.user"),
        (b"x" * (MAX_DATAGRAM + 1), r"exceeds 65536"),
    ],
)
def test_bad_datagrams_are_refused_with_the_field(data: bytes, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        decode(data)


def test_several_errors_are_summarized() -> None:
    stop = dict(STOP)
    del stop["nice_timeout"]
    with pytest.raises(UsageError, match=r"\(and 1 more\)"):
        decode(raw(arm(module="X", stop=stop)))
