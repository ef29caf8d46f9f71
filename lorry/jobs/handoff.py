"""Prepared chunks as bytes, to be validated in one process and written in another.

Only bulk create jobs without ``link_by`` travel: their items' JSON is final
once validated, so the writing process needs nothing but that JSON. Jobs
that resolve links by value, updates and destroys are prepared where they
are written.
"""

from __future__ import annotations

import msgspec

from lorry.jobs.context import JobContext, Prepared
from lorry.jobs.links import Candidate
from lorry.jobs.model import Claim
from lorry.schema.validator import ItemFailure, Valid

__all__ = ["can_hand_off", "decode_prepared", "encode_prepared"]


class _Chunk(msgspec.Struct, array_like=True):
    seq: int
    #: index, item type, JSON, created_at, updated_at. Not the raw input:
    #: the writer needs it only for an item that fails, and reads it then.
    valids: list[tuple[int, str, str, int | None, int | None]]
    #: index, item id, code, message, field, raw input
    failures: list[tuple[int, str | None, str, str, str | None, bytes]]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Chunk])


def can_hand_off(claim: Claim) -> bool:
    return claim.kind == "bulk_create" and not claim.options.get("link_by")


def encode_prepared(prepared: list[Prepared]) -> bytes:
    chunks = []
    for p in prepared:
        valids = []
        for index, valid, _raw, _id, _given in p.valids:
            assert valid.data is not None  # no link_by: the JSON is final
            type_key = valid.compiled.type_def.api_key
            valids.append(
                (index, type_key, valid.data, valid.created_at, valid.updated_at)
            )
        failures = [
            (index, item_id, f.code, f.message, f.field, raw)
            for index, item_id, f, raw in p.failures
        ]
        chunks.append(_Chunk(p.seq, valids, failures))
    return _encoder.encode(chunks)


def decode_prepared(blob: bytes, ctx: JobContext) -> list[Prepared]:
    by_key = ctx.validator.by_key
    out = []
    for chunk in _decoder.decode(blob):
        valids: list[Candidate] = [
            (index, Valid(by_key[key], None, created, updated, data), b"", None, None)
            for index, key, data, created, updated in chunk.valids
        ]
        failures = [
            (index, item_id, ItemFailure(code, message, field), raw)
            for index, item_id, code, message, field, raw in chunk.failures
        ]
        out.append(Prepared(chunk.seq, valids, failures))
    return out
