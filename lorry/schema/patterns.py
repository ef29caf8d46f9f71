"""Regular expressions from users, run by RE2: linear time, no catastrophic cases.

Field patterns and the ``matches`` filter come from API clients; with
Python's backtracking ``re``, one pattern such as ``(a+)+$`` can hold a
process for minutes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["PatternError", "compile_pattern", "search"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class PatternError(ValueError):
    """Not a regular expression in RE2 syntax."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        message = exc.args[0] if exc.args else exc
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        raise PatternError(
            f"{pattern!r} is not a regular expression in RE2 syntax ({message}); "
            "backreferences and lookarounds are not supported"
        ) from None


def search(pattern: str, value: Any) -> bool | None:
    """SQL's ``value REGEXP pattern``: NULL stays NULL, other values as text."""
    if value is None:
        return None
    return compile_pattern(pattern).search(str(value)) is not None
