"""The activity-log invariant, with hypothesis: whatever the interleaving of writes,
namespace ops, peer acknowledgements, cooling, compactions, going ALONE and back, and
crashes (with torn unsynced tails), after a crash the activity log plus the tracked
changes cover every region and name written and not acknowledged by the peer."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hamod.core.model import Generation
from hamod.tracking import ChangeSet, ChangeTracker, Create, FileRef, LazyStorage

R = 4096
FILES = [FileRef("f", 1), FileRef("d/g", 2), FileRef("h", 3)]
NAMES = ["n1", "n2", "d/n3"]
EXAMPLES = 1000 if os.environ.get("HAMOD_SOAK") == "1" else 150


def _covered(t: ChangeTracker, gens: list[Generation]) -> tuple[set[tuple[str, int]], set[str]]:
    regions: set[tuple[str, int]] = set()
    names: set[str] = set()
    sets = [t.unacknowledged(), *(t.changes_since(gens[0]) for _ in gens[:1])]
    for changes in sets:
        assert isinstance(changes, ChangeSet), changes
        regions |= {(p, r) for p, c in changes.files.items() for r in c.regions}
        names |= set(changes.names)
        names |= {op.path for op in changes.ops if isinstance(op, Create)}
    return regions, names


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_log_and_tracking_cover_every_unacknowledged_change(data: st.DataObject, seed: int) -> None:
    rng = random.Random(seed)
    storage = LazyStorage()
    t = ChangeTracker(storage=storage, region_size=R, cool_batch=data.draw(st.integers(1, 8)))
    t.mirror()
    gens: list[Generation] = []
    pending: dict[object, int] = {}  # region or name -> number of its last write
    acked = 0
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        action = data.draw(
            st.sampled_from(["write", "write", "op", "ack", "cool", "compact", "crash", "alone"])
        )
        if action == "write":
            ref = data.draw(st.sampled_from(FILES))
            region = data.draw(st.integers(0, 6))
            w = t.write(ref, region * R + 1, data.draw(st.integers(1, R)))
            pending[(ref.path, region)] = w if not t.tracking else 1 << 62
        elif action == "op":
            name = data.draw(st.sampled_from(NAMES))
            w = t.namespace(Create(name))
            pending[name] = w if not t.tracking else 1 << 62
        elif action == "ack" and not t.tracking:
            acked = data.draw(st.integers(acked, max(acked, max(pending.values(), default=0))))
            acked = min(acked, 1 << 61)
            pending = {k: w for k, w in pending.items() if w > acked}
            t.sync_point(acked, force=data.draw(st.booleans()))
        elif action == "cool":
            t.sync_point(acked, force=True)
        elif action == "compact":
            t.compact()
        elif action == "alone" and not t.tracking:
            gens.append(Generation("a", len(gens) + 1, 1))
            t.begin(gens[-1])
        elif action == "crash":
            storage.crash(rng)
            t = ChangeTracker(storage=storage, region_size=R)
            regions, names = _covered(t, gens)
            missing = {k for k in pending if k not in regions and k not in names}
            assert not missing, f"written without acknowledgement, not in the log: {missing}"
            t.reset()  # as after the resync that follows: a fresh start
            t.mirror()
            pending, acked, gens = {}, 0, []
