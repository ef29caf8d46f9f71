"""Time-sortable, unguessable ids in the ULID layout.

An id is 26 Crockford base32 characters: 10 for the millisecond timestamp and
16 for 80 random bits. Ids made in one call share the timestamp and get sorted
random parts, so a chunk's items sort in input order without losing entropy.
"""

from __future__ import annotations

import base64
import os
import re
import time

__all__ = ["ID_PATTERN", "is_id", "new_id", "new_ids"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# base64.b32encode speaks RFC 4648; translating its output is far cheaper than
# encoding 80-bit integers digit by digit in Python.
_TO_CROCKFORD = bytes.maketrans(_RFC4648.encode(), _CROCKFORD.encode())

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
    encoded = base64.b32encode(os.urandom(10 * n)).translate(_TO_CROCKFORD).decode()
    suffixes = sorted(encoded[i : i + 16] for i in range(0, 16 * n, 16))
    return [prefix + s for s in suffixes]


def new_id() -> str:
    return new_ids(1)[0]


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None
