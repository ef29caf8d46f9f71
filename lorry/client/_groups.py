"""Several jobs seen as one: splitting a long input into jobs, and waiting
for a group of jobs with one combined progress. Shared by both clients."""

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from lorry.client import _wire as wire
from lorry.client._errors import JobWaitTimeout
from lorry.client._models import Job

__all__ = [
    "GroupProgress",
    "GroupProgressCallback",
    "GroupWait",
    "abatches",
    "batches",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GroupProgress:
    """The combined state of a group of jobs, as ``wait_all`` reports it.

    ``processed`` and ``total`` count items over every job. ``progress`` runs
    from 0 to 1, never goes back, and is exactly 1 once every job has ended.
    """

    jobs: tuple[Job, ...]
    progress: float
    processed: int
    total: int
    successful: int
    failed: int
    skipped: int
    finished_jobs: int

    @property
    def is_finished(self) -> bool:
        """Whether every job of the group has ended."""
        return self.finished_jobs == len(self.jobs)


GroupProgressCallback = Callable[[GroupProgress], None]


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, read lazily."""
    if size < 1:
        raise ValueError(f"per_job must be at least 1, not {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def abatches(
    items: Iterable[T] | AsyncIterable[T], size: int
) -> AsyncIterator[list[T]]:
    """``batches`` for an async (or plain) iterable."""
    if not isinstance(items, AsyncIterable):
        for whole in batches(items, size):
            yield whole
        return
    if size < 1:
        raise ValueError(f"per_job must be at least 1, not {size}")
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _counts(job: Job) -> tuple[int, int, int, int, int]:
    """(processed, total, successful, failed, skipped) of one job."""
    attrs, details = job.attributes, job.attributes.details
    result = attrs.result
    if job.is_finished and result is not None:
        total = result.processed_items + result.unprocessed_items
        return (
            total,
            total,
            result.successful_items,
            result.failed_items,
            result.skipped_items,
        )
    total = details.total or 0
    processed = details.processed
    if processed is None:
        processed = int(attrs.progress * total)
    return (
        processed,
        total,
        details.successful or 0,
        details.failed or 0,
        details.skipped or 0,
    )


class GroupWait:
    """The bookkeeping of ``jobs.wait_all``: which jobs to poll, the
    combined progress (which never goes back), back-off and deadline."""

    def __init__(
        self,
        jobs: Iterable[str | Job],
        on_progress: GroupProgressCallback | None,
        timeout: float | None,
    ) -> None:
        given = list(jobs)
        self.ids = [job.id if isinstance(job, Job) else job for job in given]
        self.latest = {job.id: job for job in given if isinstance(job, Job)}
        self._on_progress = on_progress
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._delay = wire.FIRST_POLL_DELAY
        self._reported: tuple[Any, ...] | None = None
        self._high = 0.0

    def pending(self) -> list[str]:
        """The jobs to fetch next: those not known to have finished."""
        return [
            i
            for i in self.ids
            if i not in self.latest or not self.latest[i].is_finished
        ]

    def progress(self) -> GroupProgress:
        """The group as last seen."""
        jobs = tuple(self.latest[i] for i in self.ids if i in self.latest)
        sums = [sum(column) for column in zip(*map(_counts, jobs), strict=True)]
        processed, total, successful, failed, skipped = sums or [0] * 5
        done = sum(job.is_finished for job in jobs)
        if done == len(self.ids):
            ratio = 1.0
        else:
            ratio = min(processed / total, 1.0) if total else 0.0
        # A job whose total becomes known adds to the total, which could make
        # the ratio dip: what is reported holds at the highest seen.
        self._high = max(self._high, ratio)
        return GroupProgress(
            jobs=jobs,
            progress=self._high,
            processed=processed,
            total=total,
            successful=successful,
            failed=failed,
            skipped=skipped,
            finished_jobs=done,
        )

    def observe(self, fetched: Iterable[Job]) -> float | None:
        """Take the jobs just fetched; the delay before the next poll, or
        None once every job has finished."""
        for job in fetched:
            self.latest[job.id] = job
        group = self.progress()
        state = (group.progress, group.processed, group.finished_jobs)
        if self._on_progress is not None and state != self._reported:
            self._reported = state
            self._on_progress(group)
        if not self.pending():
            return None
        delay = self._delay
        self._delay = min(self._delay * wire.POLL_GROWTH, wire.MAX_POLL_DELAY)
        if self._deadline is None:
            return delay
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            waiting = self.latest[self.pending()[0]]
            raise JobWaitTimeout(
                f"{len(self.pending())} of {len(self.ids)} jobs had not finished "
                f"after {self._timeout:g} s; they keep running on the server",
                job=waiting,
            )
        return min(delay, remaining)

    def finished(self) -> list[Job]:
        """Every job as last fetched, in the order given."""
        return [self.latest[i] for i in self.ids]
