"""The vocabulary of jobs: kinds, statuses, staged entries, claimed chunks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "KINDS",
    "STATUSES",
    "ChunkInput",
    "Claim",
    "Entry",
    "JobStopped",
    "LeaseLost",
    "PreFailed",
    "decode_entries",
    "encode_entries",
]

KINDS = ("bulk_create", "bulk_update", "bulk_destroy", "import", "export", "migrate")
STATUSES = (
    "queued",
    "in_progress",
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
)
FINAL_STATUSES = frozenset(
    {"completed", "completed_with_errors", "failed", "cancelled"}
)
ACTIVE_STATUSES = ("queued", "in_progress")
#: Internal: the input is still being received. Never shown to clients.
STAGING = "staging"

#: A chunk that failed this many times fails its job: it is taken to be a
#: poison chunk (one that kills or breaks its worker every time).
MAX_ATTEMPTS = 8


class LeaseLost(Exception):
    """Another worker took over the chunk; this run's writes are rolled back."""


class JobStopped(Exception):
    """The job was cancelled or timed out while this run was under way."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.job_id = job_id
        self.status = status


class PreFailed(msgspec.Struct, array_like=True, frozen=True):
    """An entry that failed while being staged (duplicate id, too large)."""

    code: str
    message: str
    raw: bytes
    item_id: str | None = None


Entry = bytes | PreFailed

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[bytes | PreFailed])


def encode_entries(entries: list[Entry]) -> bytes:
    return _encoder.encode(entries)


def decode_entries(blob: bytes) -> list[Entry]:
    return _decoder.decode(blob)


@dataclass(frozen=True, slots=True)
class ChunkInput:
    seq: int
    first_index: int
    entries: list[Entry]
    #: Imports: the input line where each entry starts.
    lines: list[int] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """Consecutive chunks of one job, leased to one worker."""

    job_id: str
    kind: str
    options: dict[str, Any]
    seqs: tuple[int, ...]
    owner: str
