"""The tables: the single description of the schema that migrations follow."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "TYPE_SHIFT",
    "api_tokens",
    "idempotency_keys",
    "item_types",
    "items",
    "job_chunks",
    "job_errors",
    "jobs",
    "metadata",
    "migrated_items",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Timestamps are integer microseconds since the epoch (see lorry.clock).
_ts = sa.BigInteger

item_types = sa.Table(
    "item_types",
    metadata,
    # A small integer key keeps every item row and index entry short.
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(26), nullable=False, unique=True),
    sa.Column("api_key", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

#: Items' row keys cluster by type: an item of type T gets a key in
#: [T << TYPE_SHIFT, (T + 1) << TYPE_SHIFT), in creation order. Listing a type
#: is then a range scan of the table itself, and an insert touches one index
#: fewer than a separate (type, id) index would need: the main write cost.
TYPE_SHIFT = 40

items = sa.Table(
    "items",
    metadata,
    # INTEGER, exactly, makes the column SQLite's rowid.
    sa.Column(
        "pk",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("id", sa.String(26), nullable=False, unique=True),
    sa.Column(
        "item_type_pk", sa.Integer, sa.ForeignKey("item_types.pk"), nullable=False
    ),
    # The field values as JSON text. Unique fields get expression indexes on
    # this column, made when the item type is saved (lorry.store.dialect).
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("created_by_job", sa.String(26)),
    sa.Column("updated_by_job", sa.String(26)),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    # "staging" while the input is being received; never shown to clients.
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("total_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("successful_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_items", sa.Integer, nullable=False, server_default="0"),
    # Of the successful items of an import with upsert_by: how many were new.
    sa.Column("created_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("chunks_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("chunks_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.JSON),
    # What a kind reports beside the counts: an import's unknown columns, an
    # export's file, a migration's sample.
    sa.Column("details", sa.JSON),
    sa.Column("token_id", sa.String(26)),
    # Higher runs first (the job's priority option); equal priorities take
    # turns, the job claimed longest ago first (lorry.jobs.runner).
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_claimed_at", _ts),
    # A retry: the job whose failed items this job runs again. Not a foreign
    # key, so that forgetting the parent keeps its retries.
    sa.Column("parent_job_id", sa.String(26), index=True),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("started_at", _ts),
    sa.Column("finished_at", _ts),
    sa.Column("expires_at", _ts),
    sa.Index("ix_jobs_status_created", "status", "created_at"),
    # Counting a token's running jobs, at each claim.
    sa.Index("ix_jobs_status_token", "status", "token_id"),
)

job_chunks = sa.Table(
    "job_chunks",
    metadata,
    sa.Column(
        "job_id",
        sa.String(26),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    # pending -> running -> done; a running chunk whose lease ran out is
    # claimable again, and a done chunk is never run again. A chunk not done
    # when its job is cancelled or times out becomes "cancelled": never run.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("first_index", sa.Integer, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    # msgpack list of the staged input entries (lorry.jobs.staging).
    sa.Column("input", sa.LargeBinary, nullable=False),
    # Imports: msgpack list of the input line where each entry starts.
    sa.Column("lines", sa.LargeBinary),
    # msgpack list of [index, item id] of each item the chunk applied.
    sa.Column("output", sa.LargeBinary),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", _ts),
    sa.Column("successful_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("finished_at", _ts),
    sa.Index("ix_job_chunks_status", "status", "job_id"),
)

job_errors = sa.Table(
    "job_errors",
    metadata,
    sa.Column(
        "job_id",
        sa.String(26),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("chunk_seq", sa.Integer, nullable=False),
    sa.Column("item_id", sa.String(64)),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("field", sa.String(255)),
    # Imports: where in the file the failed record starts, and its column.
    sa.Column("line", sa.Integer),
    sa.Column("column", sa.String(255)),
    sa.Column("message", sa.Text, nullable=False),
    # The raw input of the failed item, for failed_items_data.
    sa.Column("input", sa.LargeBinary, nullable=False),
)

#: Migration jobs: the item each source item became. Written in the chunk's
#: transaction, so that it holds exactly the items that were migrated; read
#: by later chunks, whose items may link to items migrated before them.
migrated_items = sa.Table(
    "migrated_items",
    metadata,
    sa.Column(
        "job_id",
        sa.String(26),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("source_id", sa.String(26), primary_key=True),
    sa.Column("target_id", sa.String(26), nullable=False),
)

#: The Idempotency-Key of each job creation, per token: the same key again
#: answers the same job. Written in the transaction that makes the job
#: visible, so that of two identical requests at once only one job remains.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("token_id", sa.String(26), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    # SHA-256 (hex) of the method, path, query and body of the request.
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column(
        "job_id",
        sa.String(26),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", _ts, nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # SHA-256 of the token; the token itself is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("revoked_at", _ts),
    sa.Column("last_used_at", _ts),
)
