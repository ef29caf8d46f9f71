"""Requests and answers of the HTTP API, shared by ``Client`` and ``AsyncClient``.

Each API operation is built here once as a :class:`Call`: what to send and how
to read the answer. The two clients only differ in how they send it.
"""

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from lorry.client._errors import (
    InvalidResponse,
    JobWaitTimeout,
    TransportError,
    api_error,
)
from lorry.client._models import FailedItem, Job, Page
from lorry.client._query import Params, encode_param

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_URL",
    "IDEMPOTENCY_HEADER",
    "JSON_BODY_LIMIT",
    "NDJSON_BATCH",
    "AsyncFix",
    "Call",
    "Fix",
    "ProgressCallback",
    "UploadCallback",
    "WaitLoop",
    "aiter_ndjson",
    "base_headers",
    "base_url",
    "bulk_call",
    "bulk_options",
    "finish",
    "iter_ndjson",
    "keyed",
    "log_resend",
    "many",
    "ndjson",
    "nothing",
    "one",
    "path",
    "resend",
    "retry_delay",
    "transport_error",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
#: Lists up to this many items go as one JSON body; anything larger, or any
#: other iterable, is streamed as NDJSON so that it never sits in memory whole.
JSON_BODY_LIMIT = 10_000
#: Items encoded together into one chunk of a streamed body.
NDJSON_BATCH = 1_000

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A job creation is sent again this many times after a network error.
DEFAULT_RETRIES = 2
#: Seconds before the first resend; each further one waits twice as long.
RETRY_DELAY = 0.25

FIRST_POLL_DELAY = 0.05
MAX_POLL_DELAY = 1.0
POLL_GROWTH = 1.5

UploadCallback = Callable[[int], None]
ProgressCallback = Callable[[Job], None]
#: ``jobs.retry``'s ``fix``: a failed item's corrected input, or ``None``.
Fix = Callable[[FailedItem], Any]
AsyncFix = Callable[[FailedItem], Any | Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to send, and how to turn its answer into a ``T``."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Sequence[tuple[str, str]] = ()
    #: An encoded JSON body.
    body: bytes | None = None
    #: A streamed NDJSON body.
    stream: Iterable[bytes] | AsyncIterable[bytes] | None = None
    #: Told the size of ``body`` once it has been sent; streams report
    #: their own progress as they are consumed.
    on_upload: UploadCallback | None = None
    #: The type of a streamed body that is not NDJSON (an import's file).
    content_type: str | None = None
    #: Job creations: the key that makes sending the call again safe.
    idempotency_key: str | None = None
    #: A fresh ``stream`` from the start, where the body can be read again.
    restart: Callable[[], Iterable[bytes] | AsyncIterable[bytes]] | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        elif self.body is not None:
            headers["Content-Type"] = "application/json"
        elif self.stream is not None:
            headers["Content-Type"] = "application/x-ndjson"
        if self.idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = self.idempotency_key
        return headers


def keyed(call: Call[T], key: str | None) -> Call[T]:
    """A job creation, with an idempotency key (``key``, else a new one): the
    server answers the same call sent again with the job it made first."""
    return dataclasses.replace(call, idempotency_key=key or uuid.uuid4().hex)


def resend(call: Call[T], attempt: int, retries: int) -> Call[T] | None:
    """The call to send again after network error number ``attempt`` (from
    0), or ``None``: only keyed calls are resent, and only if their body can
    be read again."""
    if call.idempotency_key is None or attempt >= retries:
        return None
    if call.stream is None:
        return call
    if call.restart is None:
        return None
    return dataclasses.replace(call, stream=call.restart())


def retry_delay(attempt: int) -> float:
    return float(RETRY_DELAY * 2**attempt)


def base_url(url: str | None) -> str:
    return (url or os.environ.get("LORRY_URL") or DEFAULT_URL).rstrip("/")


def base_headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "lorry-python"}
    token = token if token is not None else os.environ.get("LORRY_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def path(*segments: str) -> str:
    """Join path segments, escaping the ones that come from callers."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class _One(msgspec.Struct, Generic[T]):
    data: T


class _Meta(msgspec.Struct):
    total_count: int | None = None


class _Many(msgspec.Struct, Generic[T]):
    data: list[T]
    meta: _Meta = msgspec.field(default_factory=_Meta)
    links: dict[str, str | None] | None = None


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decode(content: bytes, kind: Any) -> Any:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(content)
    except msgspec.MsgspecError as exc:
        raise InvalidResponse(f"unexpected answer from the server: {exc}") from exc


def one(kind: type[T]) -> Callable[[httpx.Response], T]:
    """Read ``{"data": T}``."""

    def parse(response: httpx.Response) -> T:
        envelope: _One[T] = _decode(response.content, _One[kind])  # type: ignore[valid-type]
        return envelope.data

    return parse


def many(kind: type[T], offset: int) -> Callable[[httpx.Response], Page[T]]:
    """Read ``{"data": [T], "meta": ..., "links": ...}`` fetched at ``offset``."""

    def parse(response: httpx.Response) -> Page[T]:
        envelope: _Many[T] = _decode(response.content, _Many[kind])  # type: ignore[valid-type]
        return Page(
            envelope.data,
            total_count=envelope.meta.total_count,
            next_offset=_next_offset(envelope, offset),
        )

    return parse


def _next_offset(envelope: _Many[Any], offset: int) -> int | None:
    end = offset + len(envelope.data)
    if envelope.links is not None and "next" in envelope.links:
        next_url = envelope.links["next"]
        if not next_url:
            return None
        found = httpx.URL(next_url).params.get("page[offset]", "")
        return int(found) if found.isdigit() else end
    # Without links (job data and error pages), the count tells where the
    # list ends; without a count, the first empty page does.
    total = envelope.meta.total_count
    if not envelope.data or (total is not None and end >= total):
        return None
    return end


def nothing(response: httpx.Response) -> None:
    return None


def ndjson(response: httpx.Response) -> list[Any]:
    """Read an NDJSON answer, one value a line."""
    return [_decode(line, Any) for line in response.content.splitlines() if line]


def transport_error(
    url: str, exc: httpx.TransportError, call: Call[Any] | None = None
) -> TransportError:
    detail = str(exc) or type(exc).__name__
    key = call.idempotency_key if call is not None else None
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return TransportError(
            f"cannot reach server at {url}: {detail}", idempotency_key=key
        )
    if key is not None:
        # The request went out: the server may have made the job, and the
        # same key finds it again.
        detail += f"; send it again with {IDEMPOTENCY_HEADER} {key!r}"
    return TransportError(f"request to {url} failed: {detail}", idempotency_key=key)


def log_resend(call: Call[Any], exc: httpx.TransportError, delay: float) -> None:
    logger.info(
        "%s %s failed (%s); sending it again in %.2f s with the same %s",
        call.method,
        call.path,
        str(exc) or type(exc).__name__,
        delay,
        IDEMPOTENCY_HEADER,
    )


def finish(call: Call[T], response: httpx.Response, started: float) -> T:
    """Turn an answer into the call's result, or into a typed error."""
    logger.debug(
        "%s %s -> %d in %.3f s",
        call.method,
        response.request.url,
        response.status_code,
        time.monotonic() - started,
    )
    if response.is_error:
        raise api_error(response.status_code, response.content, response.headers)
    if call.body is not None and call.on_upload is not None:
        call.on_upload(len(call.body))
    return call.parse(response)


def _counted(chunks: Iterable[bytes], on_upload: UploadCallback) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        on_upload(sent)


def iter_ndjson(
    items: Iterable[Any], on_upload: UploadCallback | None = None
) -> Iterator[bytes]:
    """Encode ``items`` as NDJSON, one chunk per batch, pulling them lazily."""
    encoder = msgspec.json.Encoder()
    iterator = iter(items)

    def chunks() -> Iterator[bytes]:
        while batch := list(islice(iterator, NDJSON_BATCH)):
            yield encoder.encode_lines(batch)

    return chunks() if on_upload is None else _counted(chunks(), on_upload)


async def aiter_ndjson(
    items: AsyncIterable[Any], on_upload: UploadCallback | None = None
) -> AsyncIterator[bytes]:
    """The async twin of :func:`iter_ndjson`; keep the two in step."""
    encoder = msgspec.json.Encoder()
    batch: list[Any] = []
    sent = 0
    async for item in items:
        batch.append(item)
        if len(batch) < NDJSON_BATCH:
            continue
        chunk = encoder.encode_lines(batch)
        batch = []
        yield chunk
        sent += len(chunk)
        if on_upload is not None:
            on_upload(sent)
    if batch:
        chunk = encoder.encode_lines(batch)
        yield chunk
        if on_upload is not None:
            on_upload(sent + len(chunk))


def bulk_call(
    endpoint: str,
    data: Iterable[Any] | AsyncIterable[Any],
    *,
    body_options: Mapping[str, Any],
    query_options: Params,
    on_upload: UploadCallback | None,
) -> Call[Job]:
    """A bulk job request: a JSON body for small lists, NDJSON otherwise."""
    if isinstance(data, list | tuple) and len(data) <= JSON_BODY_LIMIT:
        body = msgspec.json.encode({"data": data, **body_options})
        return Call("POST", endpoint, one(Job), body=body, on_upload=on_upload)
    stream: Iterable[bytes] | AsyncIterable[bytes]
    restart: Callable[[], Iterable[bytes]] | None = None
    if isinstance(data, AsyncIterable):
        stream = aiter_ndjson(data, on_upload)
    else:
        stream = iter_ndjson(data, on_upload)
        if isinstance(data, Sequence):
            # A sequence can be encoded again; an iterator was used up.
            restart = _encoder_of(data, on_upload)

    return Call(
        "POST",
        endpoint,
        one(Job),
        params=query_options,
        stream=stream,
        restart=restart,
    )


def _encoder_of(
    items: Sequence[Any], on_upload: UploadCallback | None
) -> Callable[[], Iterable[bytes]]:
    def restart() -> Iterable[bytes]:
        return iter_ndjson(items, on_upload)

    return restart


def bulk_options(
    skip_duplicates: bool | None,
    link_by: Mapping[str, str] | None,
    chunk_size: int | None,
    timeout_seconds: float | None = None,
    control: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Params]:
    """The options of a bulk job, as body keys and as query parameters."""
    body: dict[str, Any] = {}
    query: Params = []
    for key, value in (control or {}).items():
        body[key] = value
        query.append((key, "true" if value is True else str(value)))
    if skip_duplicates is not None:
        body["skip_duplicates"] = skip_duplicates
        if skip_duplicates:
            query.append(("skip_duplicates", "true"))
    if link_by:
        body["link_by"] = dict(link_by)
        query += encode_param("link_by", link_by)
    if chunk_size is not None:
        body["chunk_size"] = chunk_size
        query.append(("chunk_size", str(chunk_size)))
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
        query.append(("timeout_seconds", str(timeout_seconds)))
    return body, query


class WaitLoop:
    """The bookkeeping of ``jobs.wait``: change detection, back-off, deadline.

    Both clients feed it each job they fetch; it answers how long to sleep
    before the next poll, or ``None`` once the job has finished.
    """

    def __init__(
        self,
        last: Job | None,
        on_progress: ProgressCallback | None,
        timeout: float | None,
    ) -> None:
        self.last = last
        self._on_progress = on_progress
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._delay = FIRST_POLL_DELAY

    def observe(self, job: Job) -> float | None:
        previous, self.last = self.last, job
        if self._on_progress is not None and _changed(previous, job):
            self._on_progress(job)
        if job.is_finished:
            return None

        delay = self._delay
        self._delay = min(self._delay * POLL_GROWTH, MAX_POLL_DELAY)
        if self._deadline is None:
            return delay
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise JobWaitTimeout(
                f"job {job.id} is still {job.attributes.status} after "
                f"{self._timeout:g} s; it keeps running on the server",
                job=job,
            )
        return min(delay, remaining)


def _changed(previous: Job | None, job: Job) -> bool:
    if previous is None:
        return True
    before, after = previous.attributes, job.attributes
    return (
        before.status != after.status
        or before.progress != after.progress
        or before.details.processed != after.details.processed
    )
