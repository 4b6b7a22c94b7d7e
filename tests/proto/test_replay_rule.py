"""hamod.proto.replay: the 64-wide window against a reference model, and the epoch rule
(echo of our current epoch with a newer seq) on hand-picked cases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hamod.proto.heartbeat import Echo
from hamod.proto.replay import WINDOW, SenderState, Verdict, Window, admit

ME = 0xA11CE


@given(st.integers(0, 400), st.lists(st.integers(0, 400), max_size=200))
def test_window_matches_reference_model(first: int, seqs: list[int]) -> None:
    window = Window(first)
    seen, top = {first}, first
    for seq in seqs:
        expected = seq not in seen and seq > top - WINDOW
        after = window.admit(seq)
        assert (after is not None) == expected, (seq, top)
        if after is not None:
            window = after
            seen.add(seq)
            top = max(top, seq)
        assert window.top == top


def test_window_accepts_reordering_inside_64_and_refuses_older() -> None:
    window = Window(100)
    for seq in (99, 37, 90, 101, 164, 102):
        step = window.admit(seq)
        assert step is not None, seq
        window = step
    assert window.admit(100) is None  # now 64 below the top (164): outside
    assert window.admit(99) is None  # seen, and outside too
    assert window.admit(101) is None
    assert window.admit(103) is not None


def _admit(state: SenderState, epoch: int, seq: int, echo: int | None, ours: int = ME):
    return admit(
        state,
        epoch=epoch,
        seq=seq,
        echo=None if echo is None else Echo("me", ours, echo),
        max_version=1,
        self_epoch=ME,
    )


def test_first_contact_needs_an_echo_of_our_epoch() -> None:
    verdict, state = _admit(SenderState(), epoch=7, seq=1, echo=None)
    assert verdict is Verdict.UNCONFIRMED
    assert state.echo("peer") == Echo("peer", 7, 1)  # still echoed back, so it can prove
    verdict, state = _admit(state, epoch=7, seq=2, echo=5, ours=ME + 1)
    assert verdict is Verdict.UNCONFIRMED  # echoes another (older) epoch of ours
    verdict, state = _admit(state, epoch=7, seq=3, echo=5)
    assert verdict is Verdict.FRESH
    assert (state.epoch, state.proof, state.max_version) == (7, 5, 1)
    verdict, state = _admit(state, epoch=7, seq=4, echo=None)
    assert verdict is Verdict.FRESH  # inside the accepted epoch, no echo needed
    verdict, _ = _admit(state, epoch=7, seq=3, echo=9)
    assert verdict is Verdict.REPLAY


def test_a_new_epoch_needs_a_newer_proof_and_an_old_one_never_returns() -> None:
    _, state = _admit(SenderState(), epoch=7, seq=1, echo=5)
    _, state = _admit(state, epoch=7, seq=2, echo=6)
    verdict, state = _admit(state, epoch=8, seq=1, echo=6)  # rebooted, proof not newer
    assert verdict is Verdict.UNCONFIRMED
    verdict, state = _admit(state, epoch=8, seq=2, echo=7)
    assert verdict is Verdict.FRESH and state.epoch == 8
    # Epoch 7 never echoed more than 6: its datagrams, replayed, can never win again.
    for seq, echo in ((3, 6), (1, 5), (2, 6)):
        verdict, state = _admit(state, epoch=7, seq=seq, echo=echo)
        assert verdict is Verdict.UNCONFIRMED
    assert state.epoch == 8
