"""How a job's options bound its run: all or nothing, and an error budget.

An atomic job (``atomic: true``) is claimed whole and applied in one
transaction, every chunk after the other, so that every failing item is
found and reported; if any failed, the whole transaction is rolled back and
the job fails with ``atomic_rolled_back``: the store is as it was.

A job with ``max_errors`` or ``max_error_rate`` stops at the first chunk that
takes its failures over the budget: it fails with ``error_budget_exceeded``,
what it applied until then stays, and its remaining chunks never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorry.jobs.context import ChunkOutcome

__all__ = [
    "ATOMIC_ROLLED_BACK",
    "ERROR_BUDGET_EXCEEDED",
    "Budget",
    "is_atomic",
    "processed",
    "roll_back",
]

ATOMIC_ROLLED_BACK = "atomic_rolled_back"
ERROR_BUDGET_EXCEEDED = "error_budget_exceeded"


def is_atomic(options: dict[str, Any]) -> bool:
    return bool(options.get("atomic"))


@dataclass(frozen=True, slots=True)
class Budget:
    """The failures a job may have before it is stopped."""

    max_errors: int | None
    max_error_rate: float | None

    @classmethod
    def of(cls, options: dict[str, Any]) -> Budget | None:
        """A job's budget, or None if it has none (atomic jobs have none)."""
        count, rate = options.get("max_errors"), options.get("max_error_rate")
        if is_atomic(options) or (count is None and rate is None):
            return None
        return cls(count, rate)

    def breach(self, failed: int, processed: int) -> str | None:
        """Why a job with these counts is over its budget, or None if not.

        The rate is judged on what was processed, so never before a chunk
        has run.
        """
        if self.max_errors is not None and failed > self.max_errors:
            return f"{failed} items failed, more than max_errors ({self.max_errors})"
        rate = self.max_error_rate
        if rate is not None and processed and failed / processed > rate:
            return (
                f"{failed} of {processed} items failed ({failed / processed:.2%}), "
                f"more than max_error_rate ({rate:.2%})"
            )
        return None

    def details(self, failed: int, processed: int) -> dict[str, Any]:
        out: dict[str, Any] = {"failed_items": failed, "processed_items": processed}
        if self.max_errors is not None:
            out["max_errors"] = self.max_errors
        if self.max_error_rate is not None:
            out["max_error_rate"] = self.max_error_rate
        return out


def processed(outcomes: list[ChunkOutcome]) -> tuple[int, int]:
    """Failed and processed items of outcomes."""
    failed = sum(len(o.failures) for o in outcomes)
    done = sum(len(o.applied) + o.skipped for o in outcomes)
    return failed, failed + done


def roll_back(outcomes: list[ChunkOutcome]) -> int:
    """Mark outcomes as rolled back: the items they applied are not applied,
    and count as skipped; return how many there were."""
    undone = 0
    for o in outcomes:
        undone += len(o.applied)
        o.skipped += len(o.applied)
        o.applied = []
        o.created = o.updated = 0
    return undone
