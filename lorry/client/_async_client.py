"""The asynchronous client, twin of ``_client.py``: keep the two in step."""

import asyncio
import inspect
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

import httpx

from lorry.client import _calls as calls
from lorry.client import _groups as groups
from lorry.client import _wire as wire
from lorry.client._calls import Item
from lorry.client._download import CHUNK_BYTES, DownloadCallback, FileSink
from lorry.client._download import export_source as _export_source
from lorry.client._errors import PermissionDenied, api_error
from lorry.client._groups import GroupProgressCallback
from lorry.client._models import (
    ExportLink,
    FailedItem,
    ItemType,
    Job,
    JobItemError,
    Page,
)
from lorry.client._validate import ItemIssue, check_items
from lorry.client._wire import (
    AsyncFix,
    Call,
    ProgressCallback,
    UploadCallback,
)

__all__ = ["AsyncClient"]

T = TypeVar("T")


async def _async_chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class AsyncClient:
    """An asyncio client of the Lorry HTTP API; it mirrors ``Client``.

    ``base_url`` defaults to ``$LORRY_URL`` (else ``http://127.0.0.1:8000``)
    and ``token`` to ``$LORRY_TOKEN``. ``transport`` replaces httpx's network
    transport, e.g. with an ``httpx.MockTransport`` in tests.

    Every job creation (bulk, import, export and migrate jobs, retries)
    carries an ``Idempotency-Key``: the method's ``idempotency_key``, else a
    new one. After a network error it is sent again with the same key, up to
    ``retries`` times, so that the server answers with the job it may have
    made already, never a second one. A body that cannot be read again (an
    iterator, a pipe) is not resent: ``TransportError.idempotency_key`` then
    names the key to send it again with.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retries: int = wire.DEFAULT_RETRIES,
    ) -> None:
        self.base_url = wire.base_url(base_url)
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=wire.base_headers(token),
            timeout=timeout,
            transport=transport,
        )
        self.item_types = AsyncItemTypes(self)
        self.items = AsyncItems(self)
        self.jobs = AsyncJobs(self)
        self.exports = AsyncExports(self)

    async def aclose(self) -> None:
        """Close the connections the client holds."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            content: bytes | AsyncIterable[bytes] | None = call.body
            if call.stream is not None:
                # httpx's async client only streams async iterables.
                stream = call.stream
                content = (
                    stream
                    if isinstance(stream, AsyncIterable)
                    else _async_chunks(stream)
                )
            started = time.monotonic()
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=tuple(call.params),
                    content=content,
                    headers=call.headers,
                )
            except httpx.TransportError as exc:
                again = wire.resend(call, attempt, self.retries)
                if again is None:
                    raise wire.transport_error(self.base_url, exc, call) from exc
                delay = wire.retry_delay(attempt)
                wire.log_resend(call, exc, delay)
                await asyncio.sleep(delay)
                call, attempt = again, attempt + 1
                continue
            return wire.finish(call, response, started)


async def _paginate(fetch: Callable[[int], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    offset = 0
    while True:
        page = await fetch(offset)
        for entry in page:
            yield entry
        # A next offset that does not move forward would loop for ever.
        if page.next_offset is None or page.next_offset <= offset:
            return
        offset = page.next_offset


class AsyncItemTypes:
    """Item types (models) and their fields."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self, *, api_key: str, name: str, fields: Sequence[Mapping[str, Any]] = ()
    ) -> ItemType:
        """Create an item type with the given field definitions."""
        return await self._client._send(calls.create_item_type(api_key, name, fields))

    async def find(self, api_key: str) -> ItemType:
        """Fetch one item type by its ``api_key``; raises ``NotFound``."""
        return await self._client._send(calls.find_item_type(api_key))

    async def update(
        self,
        api_key: str,
        *,
        name: str | None = None,
        fields: Sequence[Mapping[str, Any]] | None = None,
    ) -> ItemType:
        """Rename an item type and/or replace its whole list of fields."""
        call = calls.update_item_type(api_key, name, fields)
        return await self._client._send(call)

    async def destroy(self, api_key: str) -> None:
        """Delete an item type; raises ``Conflict`` while it has items."""
        await self._client._send(calls.destroy_item_type(api_key))

    async def validate(
        self, items: Iterable[Any], *, item_type: str | None = None
    ) -> list[ItemIssue]:
        """Check ``items`` against their item types' fields, here, without
        sending them; return every problem found (empty: none found).

        The item types are fetched once from the server. Each item is read
        as a bulk create job reads it: unknown fields, required fields
        missing, values of the wrong type, lengths, ranges, patterns and
        enum values. ``item_type`` checks items that leave out their own
        ``item_type`` as that type (as an import with ``type`` does), and
        reports those naming another. Whether a unique value is taken or a
        link points at an item that exists needs the store: send the items
        with ``dry_run=True`` for that.
        """
        return check_items(items, await self.list(), item_type)

    async def list(self) -> Page[ItemType]:
        """Fetch every item type."""
        return await self._client._send(calls.list_item_types())


class AsyncItems:
    """Single items, item lists and bulk jobs on items.

    Every ``*_job`` method takes ``timeout_seconds``: the job fails (error
    code ``timeout``) once it has run that long, with what it applied kept;
    ``None`` leaves the server's default (``LORRY_JOB_TIMEOUT_SECONDS``).
    Every one takes ``retain_for``, the seconds the finished job is kept.
    Those that write items one by one (bulk create, update and destroy,
    import) take ``atomic`` (all or nothing) or an error budget,
    ``max_errors`` and ``max_error_rate`` (0 to 1), past which the job
    stops; a migration takes the budget but not ``atomic``.
    """

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, data: Mapping[str, Any]) -> Item:
        """Create one item from a flat dict holding ``item_type`` and fields."""
        return await self._client._send(calls.create_item(data))

    async def find(self, item_id: str) -> Item:
        """Fetch one item by id."""
        return await self._client._send(calls.find_item(item_id))

    async def update(
        self, item_id: str, changes: Mapping[str, Any], *, version: int | None = None
    ) -> Item:
        """Change the given fields of an item, leaving the others as they are.

        With ``version``, the change applies only if the item is still at that
        version; otherwise ``Conflict`` (``stale_version``) is raised.
        """
        return await self._client._send(calls.update_item(item_id, changes, version))

    async def destroy(self, item_id: str) -> None:
        """Delete one item."""
        await self._client._send(calls.destroy_item(item_id))

    def iter(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Item]:
        """Iterate over every matching item, fetching one page at a time."""

        async def fetch(offset: int) -> Page[Item]:
            page = {"limit": page_size, "offset": offset}
            return await self.list(filter=filter, order_by=order_by, page=page)

        return _paginate(fetch)

    async def bulk_create_job(
        self,
        data: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        skip_duplicates: bool = False,
        link_by: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
        timeout_seconds: float | None = None,
        dry_run: bool = False,
        retain_for: int | None = None,
        atomic: bool = False,
        max_errors: int | None = None,
        max_error_rate: float | None = None,
        on_upload: UploadCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a job that creates every item of ``data``; returns the job.

        A list of up to 10,000 items goes as one JSON body; anything larger,
        or any other iterable (async ones too), is streamed as NDJSON and
        consumed lazily. ``link_by`` maps a link field to a unique field of
        its target type, whose values the items then give instead of ids.
        ``on_upload`` is called with the number of bytes sent so far.
        ``dry_run`` checks every item against the store as it is (duplicates,
        links, validation) and writes none: the job reports what would be
        created, skipped and failed.
        """
        control = calls.control_options(
            retain_for=retain_for,
            atomic=atomic,
            max_errors=max_errors,
            max_error_rate=max_error_rate,
        )
        call = calls.bulk_create(
            data,
            skip_duplicates,
            link_by,
            chunk_size,
            on_upload,
            timeout_seconds,
            control,
            dry_run=dry_run,
        )
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def bulk_create_jobs(
        self,
        data: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        per_job: int = 100_000,
        **options: Any,
    ) -> list[Job]:
        """Split ``data`` into jobs of at most ``per_job`` items, start each,
        and return the jobs in input order; wait for them with
        ``jobs.wait_all``, which reports their combined progress.

        ``data`` may be any iterable (async ones too) and is read lazily: one
        job's items are held at a time. ``options`` are those of
        ``bulk_create_job`` and go to every job; each job gets its own
        idempotency key, so a job whose answer was lost is resent without
        being made twice. Item indexes in each job's errors count from that
        job's first item. If starting a job raises, the jobs started before
        it keep running.
        """
        if "idempotency_key" in options:
            raise TypeError("each job gets its own idempotency key")
        return [
            await self.bulk_create_job(batch, **options)
            async for batch in groups.abatches(data, per_job)
        ]

    async def bulk_update_job(
        self,
        data: Iterable[Mapping[str, Any]]
        | AsyncIterable[Mapping[str, Any]]
        | Mapping[str, Any],
        *,
        filter: Mapping[str, Any] | None = None,
        chunk_size: int | None = None,
        timeout_seconds: float | None = None,
        dry_run: bool = False,
        retain_for: int | None = None,
        atomic: bool = False,
        max_errors: int | None = None,
        max_error_rate: float | None = None,
        on_upload: UploadCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a job that applies ``{"id", "attributes", "meta"?}`` changes.

        With ``filter`` (as for ``list``), ``data`` is instead the mapping of
        attributes to set on every item the filter matches when the server
        accepts the job. ``dry_run`` checks every change and writes none.
        """
        control = calls.control_options(
            retain_for=retain_for,
            atomic=atomic,
            max_errors=max_errors,
            max_error_rate=max_error_rate,
        )
        call = calls.bulk_update(
            data,
            chunk_size,
            on_upload,
            timeout_seconds,
            control,
            filter=filter,
            dry_run=dry_run,
        )
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def bulk_destroy_job(
        self,
        items: Iterable[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        chunk_size: int | None = None,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        dry_run: bool = False,
        retain_for: int | None = None,
        atomic: bool = False,
        max_errors: int | None = None,
        max_error_rate: float | None = None,
    ) -> Job:
        """Start a job that deletes the items with the given ids, or (with
        ``filter``, as for ``list``) the items the filter matches when the
        server accepts the job. ``dry_run`` checks and deletes nothing.
        """
        control = calls.control_options(
            retain_for=retain_for,
            atomic=atomic,
            max_errors=max_errors,
            max_error_rate=max_error_rate,
        )
        call = calls.bulk_destroy(
            items, chunk_size, timeout_seconds, control, filter=filter, dry_run=dry_run
        )
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def migrate_job(
        self,
        *,
        from_type: str,
        to_type: str,
        mapping: Mapping[str, str | None] | None = None,
        constants: Mapping[str, Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        delete_source: bool = False,
        dry_run: bool = False,
        chunk_size: int | None = None,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        retain_for: int | None = None,
        max_errors: int | None = None,
        max_error_rate: float | None = None,
    ) -> Job:
        """Start a job that rewrites the items of ``from_type`` as items of
        ``to_type``; returns the job.

        Each source field goes to the target field ``mapping`` names (``None``
        drops it), else to the target field of the same api_key, if any.
        ``constants`` set target fields to one value for every item; ``filter``
        (as for ``list``) narrows the items migrated. With ``delete_source``
        the items are moved: the sources are deleted and every link to them
        follows to the new items; without it they are copied, and the
        copies' links to each other point at the copies. ``dry_run`` checks
        and maps everything, writes nothing, and reports the counts and a
        sample in the job's details.
        """
        call = calls.migrate(
            from_type,
            to_type,
            filter=filter,
            mapping=mapping,
            constants=constants,
            delete_source=delete_source,
            dry_run=dry_run,
            chunk_size=chunk_size,
            timeout_seconds=timeout_seconds,
            control=calls.control_options(
                retain_for=retain_for,
                max_errors=max_errors,
                max_error_rate=max_error_rate,
            ),
        )
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def import_job(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        type: str | None = None,
        format: str | None = None,
        mapping: Mapping[str, str] | None = None,
        skip_duplicates: bool = False,
        upsert_by: str | None = None,
        link_by: Mapping[str, str] | None = None,
        dry_run: bool = False,
        encoding: str | None = None,
        delimiter: str | None = None,
        decimal: str | None = None,
        thousands: str | None = None,
        unknown_columns: str | None = None,
        chunk_size: int | None = None,
        timeout_seconds: float | None = None,
        retain_for: int | None = None,
        atomic: bool = False,
        max_errors: int | None = None,
        max_error_rate: float | None = None,
        on_upload: UploadCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Import a file (CSV, JSON array or NDJSON) as items; returns the job.

        ``source`` is a path or a binary file object; the file is streamed,
        never read whole. The format comes from ``format`` or the file name.
        Columns (or keys) go to the field ``mapping`` names (a column mapped
        to "" is left out), else to the field of the same name or of its
        snake_case. ``upsert_by`` (a unique field) updates the item holding
        each record's value and creates the others. See the import options
        in the API documentation for the rest.
        """
        options = calls.import_options(
            type=type,
            mapping=mapping,
            skip_duplicates=skip_duplicates,
            upsert_by=upsert_by,
            link_by=link_by,
            dry_run=dry_run,
            encoding=encoding,
            delimiter=delimiter,
            decimal=decimal,
            thousands=thousands,
            unknown_columns=unknown_columns,
            chunk_size=chunk_size,
            timeout_seconds=timeout_seconds,
            retain_for=retain_for,
            atomic=atomic,
            max_errors=max_errors,
            max_error_rate=max_error_rate,
        )
        with calls.open_source(source) as (stream, name):
            file_format = calls.import_format(name, format)
            call = calls.import_file(
                stream, file_format, options, on_upload, as_async=True
            )
            return await self._client._send(wire.keyed(call, idempotency_key))

    async def export_job(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        format: str = "json",
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
        include_relationships: bool | int = False,
        url_ttl: int | None = None,
        bom: bool = False,
        delimiter: str | None = None,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        retain_for: int | None = None,
    ) -> Job:
        """Start a job that writes the matching items to a file; returns the job.

        As ``Client.items.export_job``.
        """
        call = calls.export_job(
            filter,
            format,
            fields,
            order_by,
            include_relationships,
            url_ttl,
            bom,
            delimiter,
            timeout_seconds,
            retain_for,
        )
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def list(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        page: Mapping[str, Any] | None = None,
    ) -> Page[Item]:
        """Fetch one page of items.

        ``filter`` nests as the query does: ``{"type": "product", "fields":
        {"price": {"gt": 10}}}``. ``order_by`` is ``"price"`` or ``"-price"``;
        ``page`` holds ``limit`` and ``offset``.
        """
        return await self._client._send(calls.list_items(filter, order_by, page))


class AsyncJobs:
    """Background jobs: their state, their wait, their per-item results."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def find(self, job: str | Job) -> Job:
        """Fetch the current state of a job."""
        return await self._client._send(calls.find_job(job))

    async def retry(
        self,
        job: str | Job,
        *,
        fix: AsyncFix | Mapping[int, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a job that runs the failed items of a finished job again.

        As ``Client.jobs.retry``; ``fix`` may also be a coroutine function.
        """
        fixes = (
            fix
            if fix is None or isinstance(fix, Mapping)
            else await self._fixes(job, fix)
        )
        call = calls.retry_job(job, fixes or {})
        return await self._client._send(wire.keyed(call, idempotency_key))

    async def _fixes(self, job: str | Job, fix: AsyncFix) -> dict[int, Any]:
        fixes: dict[int, Any] = {}
        inputs = aiter(self.failed_items(job))
        async for error in self.iter_errors(job):
            given = await anext(inputs)
            if error.index is None:
                continue
            fixed = fix(FailedItem(index=error.index, error=error, input=given))
            if inspect.isawaitable(fixed):
                fixed = await fixed
            if fixed is not None:
                fixes[error.index] = fixed
        return fixes

    async def cancel(self, job: str | Job) -> Job:
        """Cancel a queued or running job; returns it, ended ``cancelled``.

        What the job applied before stays applied; the items it never ran
        are in ``result.unprocessed_items`` and ``jobs.unprocessed``. A job
        that has already ended raises ``Conflict`` (code ``job_finished``).
        """
        return await self._client._send(calls.cancel_job(job))

    async def unprocessed(self, job: str | Job) -> list[Any]:
        """The input of every item a cancelled, timed-out or failed job never
        ran, in input order, ready to submit again (read whole)."""
        return await self._client._send(calls.unprocessed(job))

    async def wait(
        self,
        job: str | Job,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = 600.0,
    ) -> Job:
        """Poll a job until it has finished, and return it.

        Polls start 50 ms apart and slow down to one a second.
        ``on_progress(job)`` is called whenever the status or progress
        changed. After ``timeout`` seconds ``JobWaitTimeout`` is raised,
        carrying the last state seen; the job itself keeps running (this
        time-out is the caller's; it never cancels the job).
        """
        loop = wire.WaitLoop(
            job if isinstance(job, Job) else None, on_progress, timeout
        )
        while True:
            current = await self.find(job)
            delay = loop.observe(current)
            if delay is None:
                return current
            await asyncio.sleep(delay)

    async def wait_all(
        self,
        jobs: Iterable[str | Job],
        *,
        on_progress: GroupProgressCallback | None = None,
        timeout: float | None = 600.0,
    ) -> list[Job]:
        """Poll jobs until every one has finished; return them in the order
        given.

        ``on_progress(group)`` is called with a :class:`GroupProgress`
        whenever the combined progress, processed count or number of
        finished jobs changed; its ``progress`` (processed items over all
        jobs' items) never goes back and ends at exactly 1. After
        ``timeout`` seconds ``JobWaitTimeout`` is raised; the jobs keep
        running.
        """
        loop = groups.GroupWait(jobs, on_progress, timeout)
        while True:
            fetched = await asyncio.gather(*map(self.find, loop.pending()))
            delay = loop.observe(fetched)
            if delay is None:
                return loop.finished()
            await asyncio.sleep(delay)

    def iter_data(
        self, job: str | Job, *, page_size: int = 1000
    ) -> AsyncIterator[Item]:
        """Iterate over everything the job created or changed."""
        return self._entries(job, "data", page_size)

    def iter_errors(
        self, job: str | Job, *, page_size: int = 1000
    ) -> AsyncIterator[JobItemError]:
        """Iterate over every per-item error of the job, in input order."""
        return self._entries(job, "errors", page_size)

    def failed_items(
        self, job: str | Job, *, page_size: int = 1000
    ) -> AsyncIterator[Any]:
        """Iterate over the input of every failed item, ready to resubmit.

        Usually an object; a destroy job's input is the bare id, and input
        that was not JSON comes back as its text.
        """
        return self._entries(job, "failed-items", page_size)

    def _entries(
        self, job: str | Job, entries: calls.JobEntries, page_size: int
    ) -> AsyncIterator[Any]:
        async def fetch(offset: int) -> Page[Any]:
            call = calls.job_entries(job, entries, offset, page_size)
            return await self._client._send(call)

        return _paginate(fetch)

    async def list(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        page: Mapping[str, Any] | None = None,
    ) -> Page[Job]:
        """Fetch one page of jobs, newest first; filter by status and kind."""
        return await self._client._send(calls.list_jobs(filter, page))

    async def delete(self, job: str | Job) -> None:
        """Remove a finished job with its results (and an export's file).

        A job still queued or running is refused (409): cancel it first.
        """
        await self._client._send(calls.delete_job(job))

    async def purge(self) -> Page[Job]:
        """Remove every finished job past its ``expires_at`` now (admin);
        returns the jobs removed."""
        return await self._client._send(calls.purge_jobs())


class AsyncExports:
    """The files of export jobs."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def url(self, job: str | Job, *, url_ttl: int | None = None) -> ExportLink:
        """A fresh signed download URL for a completed export job."""
        return await self._client._send(calls.export_url(job, url_ttl))

    async def download(
        self,
        job: str | Job,
        path: str | os.PathLike[str],
        *,
        on_download: DownloadCallback | None = None,
    ) -> Path:
        """Stream a completed export's file to ``path``; return the path.

        As ``Client.exports.download``; the file is written by blocking
        calls, a chunk at a time.
        """
        # Keep in step with Exports.download in _client.py.
        if not isinstance(job, Job) or not job.is_finished:
            job = await self._client.jobs.find(job)
        url, sha256 = _export_source(job)
        try:
            return await self._fetch(url, path, sha256, on_download)
        except PermissionDenied as exc:
            if exc.code != "url_expired":
                raise
        link = await self.url(job)
        return await self._fetch(link.url, path, sha256, on_download)

    async def _fetch(
        self,
        url: str,
        path: str | os.PathLike[str],
        sha256: str | None,
        on_download: DownloadCallback | None,
    ) -> Path:
        sink = FileSink(path, on_download)
        try:
            async with self._client._http.stream("GET", url) as response:
                if response.is_error:
                    await response.aread()
                    raise api_error(
                        response.status_code, response.content, response.headers
                    )
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    sink.write(chunk)
        except httpx.TransportError as exc:
            sink.abort()
            raise wire.transport_error(self._client.base_url, exc) from exc
        except BaseException:
            sink.abort()
            raise
        return sink.close(sha256)
