"""What one probe saw: :class:`Probe`, a health (up, down, unknown) and a reason."""

from __future__ import annotations

from dataclasses import dataclass

from hamod.core.events import Health

__all__ = ["Probe"]


@dataclass(frozen=True)
class Probe:
    """One look: the health seen and a short human reason.

    ``down``: the thing checked is not as required. ``unknown``: the probe could not
    tell (it crashed, hung, or its program had to be killed); never acted upon."""

    health: Health
    detail: str

    @classmethod
    def up(cls, detail: str) -> Probe:
        return cls(Health.UP, detail)

    @classmethod
    def down(cls, detail: str) -> Probe:
        return cls(Health.DOWN, detail)

    @classmethod
    def unknown(cls, detail: str) -> Probe:
        return cls(Health.UNKNOWN, detail)
