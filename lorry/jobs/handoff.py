"""Prepared chunks as bytes, to be validated in one process and written in another.

Only bulk create and import jobs without ``link_by`` (nor ``upsert_by``)
travel: their items' JSON is final once validated, so the writing process
needs nothing but that JSON, the ids that records gave, and for imports
where each entry is in the file. Jobs that resolve links by value, upserts,
updates and destroys are prepared where they are written.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lorry.jobs.context import JobContext, Prepared
from lorry.jobs.links import Candidate
from lorry.jobs.model import Claim
from lorry.schema.validator import ItemFailure, Valid

__all__ = ["can_hand_off", "decode_prepared", "encode_prepared"]


class _Chunk(msgspec.Struct, array_like=True):
    seq: int
    #: index, item type, JSON, created_at, updated_at, id given. Not the raw
    #: input: the writer needs it only for an item that fails, and reads it
    #: then.
    valids: list[tuple[int, str, str, int | None, int | None, str | None]]
    #: index, item id, code, message, field, raw input
    failures: list[tuple[int, str | None, str, str, str | None, bytes]]
    first_index: int = 0
    lines: list[int] | None = None
    columns: dict[str, str] | None = None
    notes: dict[str, Any] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Chunk])


def can_hand_off(claim: Claim) -> bool:
    # An atomic job validates each chunk under the lock as it applies it:
    # all of a large job's chunks prepared ahead would be held in memory.
    if claim.options.get("link_by") or claim.options.get("atomic"):
        return False
    if claim.kind == "import":
        return not claim.options.get("upsert_by")
    return claim.kind == "bulk_create"


def encode_prepared(prepared: list[Prepared]) -> bytes:
    chunks = []
    for p in prepared:
        valids = []
        for index, valid, _raw, item_id, _given in p.valids:
            assert valid.data is not None  # no link_by: the JSON is final
            type_key = valid.compiled.type_def.api_key
            valids.append(
                (
                    index,
                    type_key,
                    valid.data,
                    valid.created_at,
                    valid.updated_at,
                    item_id,
                )
            )
        failures = [
            (index, item_id, f.code, f.message, f.field, raw)
            for index, item_id, f, raw in p.failures
        ]
        chunks.append(
            _Chunk(p.seq, valids, failures, p.first_index, p.lines, p.columns, p.notes)
        )
    return _encoder.encode(chunks)


def decode_prepared(blob: bytes, ctx: JobContext) -> list[Prepared]:
    by_key = ctx.validator.by_key
    out = []
    for chunk in _decoder.decode(blob):
        valids: list[Candidate] = [
            (index, Valid(by_key[key], None, created, updated, data), b"", given, None)
            for index, key, data, created, updated, given in chunk.valids
        ]
        failures = [
            (index, item_id, ItemFailure(code, message, field), raw)
            for index, item_id, code, message, field, raw in chunk.failures
        ]
        prepared = Prepared(chunk.seq, valids, failures, first_index=chunk.first_index)
        prepared.lines = chunk.lines
        prepared.columns = chunk.columns
        prepared.notes = chunk.notes
        out.append(prepared)
    return out
