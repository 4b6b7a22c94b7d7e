"""The REST application over a FakeBackend, in process (httpx.ASGITransport): every
endpoint, the error model, the OpenAPI document."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from hamod import PROTOCOL_VERSION, __version__
from hamod.api.models import Phase, State
from hamod.errors import AdapterError, PeerError, StateError, UsageError
from hamod.testing.fake_backend import FakeBackend

pytestmark = pytest.mark.anyio


async def test_version(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/version")
    assert r.status_code == 200
    assert r.json() == {"version": __version__, "api": "v1", "protocol": PROTOCOL_VERSION}


async def test_node_lists_modules_with_colours(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/node")
    assert r.status_code == 200
    body = r.json()
    assert body["node"] == "n1"
    assert [(m["module"], m["state"], m["colour"]) for m in body["modules"]] == [
        ("pg", "PRIM", "green"),
        ("web", "UP", "green"),
    ]


async def test_modules_and_module(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/modules")
    assert r.status_code == 200
    assert [m["module"] for m in r.json()] == ["pg", "web"]
    r = await http.get("/api/v1/modules/pg")
    assert r.status_code == 200
    pg = r.json()
    assert pg["state"] == "PRIM" and pg["peer_state"] == "SECOND" and pg["term"] == 3
    assert pg["checkers"][0]["name"] == "pg_tcp" and pg["checkers"][0]["result"] == "unknown"
    assert pg["toggles"] == {"failover": True, "checkers": True, "errd": True, "boot": "auto"}
    assert pg["resync"] is None and pg["colour"] == "green"


async def test_unknown_module_is_404_with_known_names(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/modules/nope")
    assert r.status_code == 404
    assert r.json() == {
        "code": "not_found",
        "message": "unknown module 'nope' (known: pg, web)",
        "field": "name",
    }
    for path in ("/api/v1/modules/nope/ready", "/api/v1/modules/nope/log"):
        assert (await http.get(path)).status_code == 404
    r = await http.post("/api/v1/modules/nope/commands", json={"command": "stop"})
    assert r.status_code == 404


async def test_plain_usage_error_named_unknown_module_is_404(
    http: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.fail_next(UsageError("unknown module 'x' (known: pg)"))
    assert (await http.get("/api/v1/modules/x")).status_code == 404


async def test_command_changes_state(http: httpx.AsyncClient, backend: FakeBackend) -> None:
    r = await http.post("/api/v1/modules/pg/commands", json={"command": "swap"})
    assert r.status_code == 200
    assert r.json() == {
        "module": "pg",
        "node": "n1",
        "command": "swap",
        "accepted": True,
        "reason": "swapped: now secondary",
        "state_before": "PRIM",
        "state_after": "SECOND",
    }
    assert (await http.get("/api/v1/modules/pg")).json()["state"] == "SECOND"


async def test_command_with_nothing_to_do_is_not_accepted(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/modules/pg/commands", json={"command": "failover_on"})
    assert r.status_code == 200
    assert r.json()["accepted"] is False and r.json()["reason"] == "failover already on"


async def test_command_refused_is_409_with_reason(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/modules/web/commands", json={"command": "prim"})
    assert r.status_code == 409
    assert r.json() == {
        "code": "state",
        "message": "prim: web is a farm module (no primary)",
        "field": None,
    }


async def test_set_resource(http: httpx.AsyncClient, backend: FakeBackend) -> None:
    body = {"command": "set_resource", "resource": "custom.c1", "value": "down"}
    r = await http.post("/api/v1/modules/pg/commands", json=body)
    assert r.status_code == 200 and r.json()["accepted"] is True
    assert backend.resource("pg", "custom.c1") == "down"


@pytest.mark.parametrize(
    ("body", "status", "message", "field"),
    [
        (
            {"command": "jump"},
            422,
            "command: not one of start, stop, forcestop, prim, second, primforce, swap, "
            "restart, stopstart, fullsync, verify, failover_on, failover_off, checker_on, "
            "checker_off, errd_on, errd_off, boot_on, boot_off, boot_auto or set_resource",
            "command",
        ),
        ({}, 422, "command: required", "command"),
        ({"command": "stop", "force": True}, 422, "force: unknown field", "force"),
        (
            {"command": "set_resource", "value": "up"},
            422,
            "resource: required for set_resource",
            "resource",
        ),
        (
            {"command": "stop", "resource": "x"},
            422,
            "resource: not an argument of stop",
            "resource",
        ),
        (
            {"command": "swap", "fullsync": True},
            422,
            "fullsync: not an argument of swap",
            "fullsync",
        ),
        ({"command": "stop", "fullsync": "maybe"}, 422, None, "fullsync"),
        ([1, 2], 422, "body: must be a JSON object", "body"),
        (
            {"command": "checker_off", "checker": "nope"},
            400,
            "checker: unknown checker 'nope' (known: pg_tcp)",
            "checker",
        ),
    ],
)
async def test_bad_command_body_names_the_field(
    http: httpx.AsyncClient,
    body: object,
    status: int,
    message: str | None,
    field: str,
) -> None:
    r = await http.post("/api/v1/modules/pg/commands", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["code"] == "usage"
    assert answer["field"] == field
    if message is not None:
        assert answer["message"] == message
    assert "detail" not in answer and "loc" not in r.text


async def test_invalid_json_is_422(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/v1/modules/pg/commands",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "usage" and "invalid JSON" in r.json()["message"]


async def test_bad_query_and_path_name_the_field(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/modules/pg/log", params={"follow": "perhaps"})
    assert r.status_code == 422
    assert r.json()["field"] == "follow"
    assert r.json()["message"].startswith("follow: ")
    r = await http.get("/api/v1/modules/pg/log", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["field"] == "since"
    r = await http.get("/api/v1/modules/pg/log", params={"since": "2024-01-01T00:00:00"})
    assert r.status_code == 422
    assert r.json()["message"] == "since: input should have timezone info"
    r = await http.get("/api/v1/modules/-bad")
    assert r.status_code == 422 and r.json()["field"] == "name"


async def test_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/nothing")
    assert r.status_code == 404
    assert r.json() == {
        "code": "not_found",
        "message": "no such endpoint: /api/v1/nothing",
        "field": None,
    }
    r = await http.delete("/api/v1/modules")
    assert r.status_code == 405 and r.json()["code"] == "usage"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (UsageError("since: in the future"), 400, "usage"),
        (StateError("stop: a transition is in progress"), 409, "state"),
        (PeerError("n2: unreachable"), 502, "peer"),
        (AdapterError("vip 10.0.0.9: cannot add"), 500, "adapter"),
    ],
)
async def test_hamod_errors_map_to_status(
    http: httpx.AsyncClient, backend: FakeBackend, exc: Exception, status: int, code: str
) -> None:
    backend.fail_next(exc)
    r = await http.get("/api/v1/modules/pg")
    assert r.status_code == status
    assert r.json()["code"] == code and r.json()["message"] == str(exc)


async def test_usage_error_field_prefix(http: httpx.AsyncClient, backend: FakeBackend) -> None:
    backend.fail_next(UsageError("since: in the future"))
    assert (await http.get("/api/v1/modules")).json()["field"] == "since"


async def test_unexpected_exception_is_500_without_traceback(
    http: httpx.AsyncClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.fail_next(ZeroDivisionError("secret detail /etc/hamod/key"))
    r = await http.get("/api/v1/modules")
    assert r.status_code == 500
    assert r.json() == {
        "code": "internal",
        "message": "internal error (details in the daemon's log)",
        "field": None,
    }
    assert "Traceback" not in r.text and "secret" not in r.text
    assert "ZeroDivisionError" in caplog.text  # the traceback went to the log


async def test_ready_endpoint(http: httpx.AsyncClient, backend: FakeBackend) -> None:
    r = await http.get("/api/v1/modules/pg/ready")
    assert r.status_code == 200
    assert r.json() == {"module": "pg", "ready": True, "state": "PRIM", "phase": "READY"}
    assert (await http.get("/api/v1/modules/web/ready")).status_code == 200
    backend.set_status("pg", phase=Phase.TRANSIENT)
    r = await http.get("/api/v1/modules/pg/ready")
    assert r.status_code == 404 and r.json()["ready"] is False
    backend.set_status("pg", state=State.SECOND, phase=Phase.READY)
    assert (await http.get("/api/v1/modules/pg/ready")).status_code == 404


async def test_log_and_since(http: httpx.AsyncClient, backend: FakeBackend) -> None:
    backend.emit("pg", "Local state PRIM Ready")
    await http.post("/api/v1/modules/pg/commands", json={"command": "errd_off"})
    r = await http.get("/api/v1/modules/pg/log")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[0].endswith(" Local state PRIM Ready")
    assert lines[1].endswith(" errd_off: errd off (PRIM -> PRIM)")
    r = await http.get("/api/v1/modules/pg/log", params={"since": "2999-01-01T00:00:00Z"})
    assert r.status_code == 200 and r.text == ""


async def test_module_config_is_the_canonical_dump(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/modules/pg/config")
    assert r.status_code == 200
    body = r.json()
    assert body["module"] == "pg" and body["node"] == "n1"
    assert body["config"] == {"cluster": None, "module": {"module": "pg", "mode": "mirror"}}
    text = json.dumps(body["config"], sort_keys=True, separators=(",", ":"))
    assert body["config_hash"] == hashlib.sha256(text.encode()).hexdigest()
    r = await http.get("/api/v1/modules/nope/config")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_openapi_lists_every_route(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert set(doc["paths"]) == {
        "/api/v1/version",
        "/api/v1/node",
        "/api/v1/modules",
        "/api/v1/modules/{name}",
        "/api/v1/modules/{name}/manifest",
        "/api/v1/modules/{name}/verify",
        "/api/v1/modules/{name}/commands",
        "/api/v1/modules/{name}/config",
        "/api/v1/modules/{name}/log",
        "/api/v1/modules/{name}/ready",
    }
    post = doc["paths"]["/api/v1/modules/{name}/commands"]["post"]
    assert post["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert (await http.get("/api/v1/docs")).status_code == 200


async def test_manifest_and_verify_stream_lines_and_check_arguments(
    http: httpx.AsyncClient, backend: FakeBackend
) -> None:
    r = await http.post("/api/v1/modules/pg/manifest", json={"dir": 0})
    assert r.status_code == 400 and "replicates no directory" in r.json()["message"]
    backend.manifests["pg"] = [[b'{"p":"/"}\n', b'{"p":"/a"}\n']]
    r = await http.post("/api/v1/modules/pg/manifest", json={"dir": 0, "paths": ["/a"]})
    assert r.status_code == 200 and r.text.splitlines() == ['{"p":"/"}', '{"p":"/a"}']
    assert r.headers["content-type"].startswith("application/x-ndjson")
    r = await http.post("/api/v1/modules/pg/manifest", json={"dir": 1})
    assert r.status_code == 400 and "dir" in r.json()["message"]
    r = await http.post("/api/v1/modules/pg/manifest", json={"dir": -1})
    assert r.status_code == 422
    r = await http.post("/api/v1/modules/pg/manifest", json={"dir": 0, "bogus": 1})
    assert r.status_code == 422
    r = await http.post("/api/v1/modules/nope/verify")
    assert r.status_code == 404
    backend.verify_lines["pg"] = ['{"done": true, "ok": true}\n']
    r = await http.post("/api/v1/modules/pg/verify")
    assert r.status_code == 200 and json.loads(r.text) == {"done": True, "ok": True}
