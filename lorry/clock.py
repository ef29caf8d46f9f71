"""Timestamps: stored as integer microseconds since the epoch (UTC).

Integers compare and index the same way on SQLite and PostgreSQL and cost a
fraction of a formatted string on the bulk insert path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["from_iso", "now_us", "to_iso", "us_from_datetime"]


def now_us() -> int:
    return time.time_ns() // 1000


def us_from_datetime(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1)


def to_iso(us: int | None) -> str | None:
    if us is None:
        return None
    # Integer arithmetic: a float of microseconds loses them near year 9999.
    value = _EPOCH + timedelta(microseconds=us)
    return value.isoformat(timespec="microseconds") + "Z"


def from_iso(text: str) -> int:
    """Parse an ISO 8601 date or datetime (naive means UTC) into microseconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return us_from_datetime(value)
