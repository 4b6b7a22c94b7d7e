"""The API's data model: derived colour, lq exit codes, command arguments, tolerance."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hamod.api.backend import Backend, unknown_module
from hamod.api.models import (
    LQ_EXIT_CODES,
    Colour,
    Command,
    CommandRequest,
    ModuleStatus,
    Phase,
    State,
    colour_of,
)
from hamod.errors import UsageError
from hamod.testing.fake_backend import FakeBackend


def test_colour_follows_phase_and_stop_is_red() -> None:
    assert colour_of(State.PRIM, Phase.READY) is Colour.GREEN
    assert colour_of(State.SECOND, Phase.TRANSIENT) is Colour.ORANGE
    assert colour_of(State.WAIT, Phase.NOT_READY) is Colour.RED
    assert colour_of(State.STOP, Phase.READY) is Colour.RED


def test_lq_exit_codes_are_safekits() -> None:
    assert {s.value: c for s, c in LQ_EXIT_CODES.items()} == {
        "STOP": 0,
        "WAIT": 1,
        "ALONE": 2,
        "UP": 2,
        "PRIM": 3,
        "SECOND": 4,
    }


def test_status_ignores_fields_of_newer_nodes_and_recomputes_colour() -> None:
    data = {"module": "m", "node": "n", "state": "SECOND", "phase": "TRANSIENT"}
    status = ModuleStatus.model_validate(data | {"colour": "green", "new_field": 1})
    assert status.colour is Colour.ORANGE
    assert not status.ready


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"command": "set_resource", "resource": "r"}, "value"),
        ({"command": "prim", "checker": "c"}, "checker"),
        ({"command": "start", "extra": 1}, "extra"),
        ({"command": "checker_on", "checker": ""}, "checker"),
    ],
)
def test_command_arguments_are_checked(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        CommandRequest.model_validate(data)
    assert err.value.errors()[0]["loc"] == (field,)


def test_command_arguments_accepted() -> None:
    req = CommandRequest.model_validate({"command": "second", "fullsync": True})
    assert req.command is Command.SECOND and req.fullsync
    assert CommandRequest(command=Command.CHECKER_ON).checker is None


def test_unknown_module_message() -> None:
    err = unknown_module("x", ["web", "pg"])
    assert isinstance(err, UsageError)
    assert str(err) == "unknown module 'x' (known: pg, web)"
    assert str(unknown_module("x", [])) == "unknown module 'x' (known: none)"


def test_fake_backend_implements_the_port() -> None:
    backend: Backend = FakeBackend()
    assert isinstance(backend, Backend)
