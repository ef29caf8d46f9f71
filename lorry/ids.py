"""Time-sortable, unguessable ids in the ULID layout.

An id is 26 Crockford base32 characters: 10 for the millisecond timestamp and
16 for 80 random bits. Ids made in one call share the timestamp and get sorted
random parts, so a chunk's items sort in input order without losing entropy.
"""

from __future__ import annotations

import os
import re
import time

__all__ = ["ID_PATTERN", "is_id", "new_id", "new_ids"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Maps each random byte to the character of its low five bits: one translate
# of a random buffer makes every id's random part at C speed (256 is a
# multiple of 32, so each character is uniform).
_BYTE_TO_CHAR = bytes(_CROCKFORD.encode()[b & 31] for b in range(256))

ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
_ID_RE = re.compile(ID_PATTERN)


def _time_prefix(ms: int) -> str:
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[ms & 31])
        ms >>= 5
    return "".join(reversed(chars))


def new_ids(n: int) -> list[str]:
    """Return ``n`` fresh ids, ascending."""
    if n <= 0:
        return []
    prefix = _time_prefix(time.time_ns() // 1_000_000)
    encoded = os.urandom(16 * n).translate(_BYTE_TO_CHAR).decode()
    suffixes = sorted(encoded[i : i + 16] for i in range(0, 16 * n, 16))
    return [prefix + s for s in suffixes]


def new_id() -> str:
    return new_ids(1)[0]


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None
