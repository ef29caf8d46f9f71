"""Requests and answers of the HTTP API, shared by ``Client`` and ``AsyncClient``.

Each API operation is built here once as a :class:`Call`: what to send and how
to read the answer. The two clients only differ in how they send it.
"""

import logging
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
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
from lorry.client._models import Job, Page
from lorry.client._query import Params, encode_param

__all__ = [
    "DEFAULT_URL",
    "JSON_BODY_LIMIT",
    "NDJSON_BATCH",
    "Call",
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
    "many",
    "ndjson",
    "nothing",
    "one",
    "path",
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

FIRST_POLL_DELAY = 0.05
MAX_POLL_DELAY = 1.0
POLL_GROWTH = 1.5

UploadCallback = Callable[[int], None]
ProgressCallback = Callable[[Job], None]


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

    @property
    def headers(self) -> dict[str, str]:
        if self.content_type is not None:
            return {"Content-Type": self.content_type}
        if self.body is not None:
            return {"Content-Type": "application/json"}
        if self.stream is not None:
            return {"Content-Type": "application/x-ndjson"}
        return {}


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


def transport_error(url: str, exc: httpx.TransportError) -> TransportError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return TransportError(f"cannot reach server at {url}: {detail}")
    return TransportError(f"request to {url} failed: {detail}")


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
    if isinstance(data, AsyncIterable):
        stream = aiter_ndjson(data, on_upload)
    else:
        stream = iter_ndjson(data, on_upload)
    return Call("POST", endpoint, one(Job), params=query_options, stream=stream)


def bulk_options(
    skip_duplicates: bool | None,
    link_by: Mapping[str, str] | None,
    chunk_size: int | None,
    timeout_seconds: float | None = None,
) -> tuple[dict[str, Any], Params]:
    """The options of a bulk job, as body keys and as query parameters."""
    body: dict[str, Any] = {}
    query: Params = []
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
