"""Typed views of the resources the server answers with.

Decoding is lenient on purpose: keys the server adds later are ignored and
missing optional keys take their defaults, so an older client keeps working
against a newer server.
"""

from typing import Any, Generic, TypeVar

import msgspec

__all__ = [
    "FINAL_STATUSES",
    "ExportLink",
    "FailedItem",
    "ItemType",
    "ItemTypeAttributes",
    "Job",
    "JobAttributes",
    "JobDetails",
    "JobError",
    "JobItemError",
    "JobResult",
    "Page",
]

T = TypeVar("T")

#: Statuses after which a job never changes again.
FINAL_STATUSES = frozenset(
    {"completed", "completed_with_errors", "failed", "cancelled"}
)


class JobDetails(msgspec.Struct, frozen=True, kw_only=True):
    """Live counters of a job; any of them may be unknown (``None``)."""

    #: ``queued``, ``running`` or ``finished``.
    phase: str | None = None
    total: int | None = None
    processed: int | None = None
    successful: int | None = None
    failed: int | None = None
    skipped: int | None = None
    chunks_total: int | None = None
    #: Updates and destroys by filter: how many items matched at accept.
    selected: int | None = None
    chunks_done: int | None = None
    items_per_second: float | None = None
    eta_seconds: float | None = None
    #: Queued jobs: the job's place in the queue (1: the next to start).
    queue_position: int | None = None
    #: Imports: columns (or keys) of the file that match no field.
    unknown_columns: list[str] | None = None
    #: Migrations: where each source field goes (``None``: nowhere).
    field_map: dict[str, str | None] | None = None
    #: Dry-run migrations: how many items would be created and would fail,
    #: and the first few items as they would be written.
    would_create: int | None = None
    would_fail: int | None = None
    sample: list[dict[str, Any]] | None = None


class JobItemError(msgspec.Struct, frozen=True, kw_only=True):
    """Why one input item failed."""

    #: Position of the item in the job's input.
    index: int | None = None
    #: The item's id, where the item had one (updates, destroys).
    id: str | None = None
    code: str = ""
    field: str | None = None
    message: str = ""
    #: Imports: the input line where the record starts, and its column.
    line: int | None = None
    column: str | None = None


class FailedItem(msgspec.Struct, frozen=True, kw_only=True):
    """One failed item of a finished job, as ``jobs.retry`` shows it to
    ``fix``: why it failed, and the input it had."""

    #: Its position in the job's input (``error.index``).
    index: int
    error: JobItemError
    #: The input, as the job kept it: usually an object (an import's record
    #: as the file had it); a destroy job's id string.
    input: Any


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a job could not run at all."""

    code: str = ""
    message: str = ""
    details: Any = None


class JobResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a finished job."""

    processed_items: int = 0
    successful_items: int = 0
    failed_items: int = 0
    skipped_items: int = 0
    #: Items of a cancelled, timed-out or failed job that never ran; with
    #: the processed ones they make the job's total. ``jobs.unprocessed``
    #: lists their input.
    unprocessed_items: int = 0
    #: Imports and migrations: of the successful items, how many were created
    #: and how many updated.
    created_items: int | None = None
    updated_items: int | None = None
    #: The first items created or changed; the rest through ``jobs.iter_data``.
    data: list[dict[str, Any]] = msgspec.field(default_factory=list)
    #: The first failures, in input order; all through ``jobs.iter_errors``.
    errors: list[JobItemError] = msgspec.field(default_factory=list)
    #: ``failed_items_data[i]`` is the input of the item of ``errors[i]``:
    #: usually an object, but whatever was sent (a destroy job's id string,
    #: a line that was not JSON, as text).
    failed_items_data: list[Any] = msgspec.field(default_factory=list)
    truncated: dict[str, bool] = msgspec.field(default_factory=dict)
    links: dict[str, str] = msgspec.field(default_factory=dict)
    #: Export jobs only: where to download the file (a path on the server,
    #: signed), until when, and what the file holds: its format, its size in
    #: bytes, how many items, and the SHA-256 of its bytes (hex).
    url: str | None = None
    expires_at: str | None = None
    format: str | None = None
    size: int | None = None
    item_count: int | None = None
    sha256: str | None = None


class ExportLink(msgspec.Struct, frozen=True, kw_only=True):
    """A fresh signed download URL of an export's file."""

    url: str
    expires_at: str


class JobAttributes(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    status: str
    #: From 0 to 1; never goes back, and is exactly 1 once the job has ended.
    progress: float = 0.0
    details: JobDetails = msgspec.field(default_factory=JobDetails)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    result: JobResult | None = None
    error: JobError | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: str | None = None
    #: A retry: the job whose failed items it runs again.
    parent_job_id: str | None = None
    #: The jobs that retried this one's failed items, oldest first.
    retries: list[str] = msgspec.field(default_factory=list)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A background job, as ``GET /jobs/{id}`` answers it."""

    id: str
    attributes: JobAttributes
    type: str = "job"
    links: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        """Whether the job has reached a final status and will not change."""
        return self.attributes.status in FINAL_STATUSES


class ItemTypeAttributes(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str
    name: str = ""
    #: Field definitions as the server returns them (``api_key``,
    #: ``field_type``, ``required``, ``unique``, ``default``, ``validators``).
    fields: list[dict[str, Any]] = msgspec.field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None


class ItemType(msgspec.Struct, frozen=True, kw_only=True):
    """A model: its ``api_key``, name and fields."""

    id: str
    attributes: ItemTypeAttributes
    type: str = "item_type"


class Page(list[T], Generic[T]):
    """One page of a list answer: the entries, plus where the list goes on."""

    def __init__(
        self,
        entries: list[T],
        *,
        total_count: int | None = None,
        next_offset: int | None = None,
    ) -> None:
        super().__init__(entries)
        #: Entries in the whole list, when the server says.
        self.total_count = total_count
        #: The ``page[offset]`` of the next page, or ``None`` on the last page.
        self.next_offset = next_offset
