"""What a worker knows while it runs the chunks of one job."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lorry.clock import now_us
from lorry.jobs.model import ChunkInput, PreFailed
from lorry.schema.fields import ItemTypeDef
from lorry.schema.validator import ItemFailure, Valid, Validator
from lorry.store.dialect import Dialect

__all__ = ["ChunkOutcome", "JobContext", "Prepared", "decoded_entries", "schema_key"]


def schema_key(types: list[ItemTypeDef]) -> tuple[tuple[int, int], ...]:
    """Changes whenever an item type is created, changed or deleted."""
    return tuple((t.pk, t.updated_at) for t in types)


_VALIDATORS: OrderedDict[Any, Validator] = OrderedDict()
_VALIDATORS_LOCK = threading.Lock()


def _validator(types: list[ItemTypeDef], link_by: dict[str, str]) -> Validator:
    """The compiled validator of a schema, compiled once per process.

    Compiling costs milliseconds per item type, and every batch and every
    single write would otherwise pay it, under the write lock.
    """
    key = (schema_key(types), tuple(sorted(link_by.items())))
    with _VALIDATORS_LOCK:
        found = _VALIDATORS.get(key)
        if found is not None:
            _VALIDATORS.move_to_end(key)
            return found
    validator = Validator(types, link_by)
    with _VALIDATORS_LOCK:
        _VALIDATORS[key] = validator
        while len(_VALIDATORS) > 16:
            _VALIDATORS.popitem(last=False)
    return validator


@dataclass(slots=True)
class JobContext:
    job_id: str | None
    kind: str
    options: dict[str, Any]
    dialect: Dialect
    types: list[ItemTypeDef]
    validator: Validator
    type_by_pk: dict[int, ItemTypeDef]
    pk_by_key: dict[str, int]
    now: int = field(default_factory=now_us)
    #: What a kind carries from one chunk of a claim to the next: a claim's
    #: chunks are applied one after the other, in one transaction.
    scratch: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        job_id: str | None,
        kind: str,
        options: dict[str, Any],
        dialect: Dialect,
        types: list[ItemTypeDef],
    ) -> JobContext:
        validator = _validator(types, options.get("link_by") or {})
        return cls(
            job_id,
            kind,
            options,
            dialect,
            types,
            validator,
            {t.pk: t for t in types},
            {t.api_key: t.pk for t in types},
        )


@dataclass(slots=True)
class Prepared:
    """A chunk after the work that needs no database: parsing, validating."""

    seq: int
    #: index, validated item, raw input, item id (updates), keys given
    valids: list[tuple[int, Valid, bytes, str | None, frozenset[str] | None]]
    failures: list[tuple[int, str | None, ItemFailure, bytes]]
    #: destroy jobs: index, id, raw
    ids: list[tuple[int, str, bytes]] = field(default_factory=list)
    #: update jobs: index -> (id, attributes, expected version, raw)
    updates: list[tuple[int, str, dict[str, Any], int | None, bytes]] = field(
        default_factory=list
    )
    #: Imports: where the chunk's entries are in the file, and each field's
    #: column, so that errors can say so; notes for the job's details; the
    #: records of an upsert, kept for the ones that update.
    first_index: int = 0
    lines: list[int] | None = None
    columns: dict[str, str] | None = None
    notes: dict[str, Any] | None = None
    records: dict[int, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChunkOutcome:
    seq: int
    applied: list[tuple[int, str]] = field(default_factory=list)
    failures: list[tuple[int, str | None, ItemFailure, bytes]] = field(
        default_factory=list
    )
    skipped: int = 0
    #: Of the applied items, how many were created and how many updated, when
    #: a kind does both (an import with upsert_by).
    created: int = 0
    updated: int = 0
    #: Where failures are in the input: index -> line, field -> column.
    lines: dict[int, int] | None = None
    columns: dict[str, str] | None = None
    #: Merged into the job's details (lists are united, numbers added).
    notes: dict[str, Any] | None = None


def decoded_entries(
    chunk: ChunkInput,
    prepared: Prepared,
    decode: Callable[[bytes], Any],
    shape: str,
) -> Iterator[tuple[int, bytes, Any]]:
    """Each entry of a chunk, decoded; one that fails becomes its own failure."""
    for index, entry in enumerate(chunk.entries, start=chunk.first_index):
        failure: ItemFailure | None = None
        if isinstance(entry, PreFailed):
            failure = ItemFailure(entry.code, entry.message)
            prepared.failures.append((index, entry.item_id, failure, entry.raw))
            continue
        try:
            value = decode(entry)
        except msgspec.ValidationError as exc:  # before its base, DecodeError
            failure = ItemFailure("invalid_item", f"{shape}: {exc}")
        except msgspec.DecodeError as exc:
            failure = ItemFailure("invalid_json", f"not valid JSON: {exc}")
        except RecursionError:
            failure = ItemFailure("invalid_json", "the entry is nested too deeply")
        if failure is not None:
            prepared.failures.append((index, None, failure, entry))
        else:
            yield index, entry, value
