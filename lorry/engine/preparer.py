"""Validating the next batch in a process of its own while this one is written.

A worker process spends about a third of its time parsing and validating and
the rest writing; both hold the GIL, so a thread cannot overlap them. Each
worker gets a preparer process: before the worker writes one batch, it leases
the next and hands it over; by the time the write commits, the next batch is
validated. Exactly-once still rests on the worker's write transaction alone:
a preparer that dies costs speed (the worker prepares itself), never results.
"""

from __future__ import annotations

import logging
import os
import time
from multiprocessing.connection import Connection

import msgspec

from lorry.config import Settings
from lorry.jobs import runner
from lorry.jobs.handoff import can_hand_off, decode_prepared, encode_prepared
from lorry.jobs.model import Claim
from lorry.store.db import Database

__all__ = ["Preparer", "preparer_main"]

log = logging.getLogger(__name__)

_claims = msgspec.msgpack.Encoder()
_claim_of = msgspec.msgpack.Decoder(tuple[str, str, dict[str, object], list[int], str])
_FAILED = b""


def preparer_main(
    settings: Settings, conn: Connection, parent: int, level: int
) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    db = Database(settings.url, lock_file=settings.write_lock_file)
    try:
        while os.getppid() == parent:
            if not conn.poll(1.0):
                continue
            try:
                job_id, kind, options, seqs, owner = _claim_of.decode(conn.recv_bytes())
            except EOFError:
                return
            claim = Claim(job_id, kind, dict(options), tuple(seqs), owner)
            # Chunk by chunk, kept encoded: a chunk's many Python objects live
            # only while it is validated. All is sent once done, because a
            # send blocks until the worker, busy writing, reads.
            try:
                ctx = runner.load_context(db, claim)
                blobs = [
                    encode_prepared([prepared])
                    for prepared in runner.iter_prepared(db, claim, ctx)
                ]
                for blob in blobs:
                    conn.send_bytes(blob)
            except Exception:
                log.exception(
                    "preparing job %s chunks %s failed; the worker will retry",
                    job_id,
                    seqs,
                    extra={"action": "prepare_error", "job_id": job_id},
                )
                conn.send_bytes(_FAILED)
    finally:
        db.dispose()


class Preparer:
    """The worker's side: hand a claim over, take its prepared batch back."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.alive = True
        self._handed: Claim | None = None

    def give(self, claim: Claim) -> None:
        if not self.alive or not can_hand_off(claim):
            return
        message = (
            claim.job_id,
            claim.kind,
            claim.options,
            list(claim.seqs),
            claim.owner,
        )
        try:
            self.conn.send_bytes(_claims.encode(message))
        except OSError:
            self.alive = False
            return
        self._handed = claim

    def take(self, db: Database, claim: Claim) -> runner.PreparedClaim | None:
        """The prepared batch of a claim given before, or None: prepare it here."""
        if self._handed is not claim:
            return None
        self._handed = None
        started = time.perf_counter()
        ctx = runner.load_context(db, claim)
        prepared = []
        for _ in claim.seqs:
            try:
                blob = self.conn.recv_bytes()
            except (EOFError, OSError):
                self.alive = False
                log.warning(
                    "the preparer process is gone; preparing in the worker",
                    extra={"action": "preparer_lost", "job_id": claim.job_id},
                )
                return None
            if blob == _FAILED:
                return None
            prepared.extend(decode_prepared(blob, ctx))
        return runner.PreparedClaim(ctx, prepared, time.perf_counter() - started)
