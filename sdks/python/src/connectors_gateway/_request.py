"""What the sync and async clients share: the description of one API call, turning an answer
into a value or a typed error, and the retry rule for 429 / 503 answers."""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from collections.abc import Awaitable
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import httpx

from .errors import ApiError, error_class_for

T = TypeVar("T")

#: Wait for a 503 without ``Retry-After``, doubled per attempt.
DEFAULT_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class Request(Generic[T]):
    """One API call. ``extract`` names the field of the answer to return instead of the whole
    body (e.g. ``servers`` of ``{"servers": [...]}``)."""

    method: str
    path: str
    query: dict[str, Any] | None = None
    body: Any = None
    extract: str | None = None


class Run(Protocol):
    """Sends a call and returns its value (the sync clients)."""

    def __call__(self, request: Request[T], /) -> T: ...


class AsyncRun(Protocol):
    """Sends a call and returns its value (the async clients)."""

    def __call__(self, request: Request[T], /) -> Awaitable[T]: ...


@dataclass(frozen=True)
class ClientConfig:
    """Options common to every client."""

    base_url: str
    headers: dict[str, str]
    timeout: float = 30.0
    max_retries: int = 2
    max_retry_delay: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("base_url is required")
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")


def segment(value: str) -> str:
    """Encodes one path segment (ids and names are user input)."""
    return quote(value, safe="")


def params(query: dict[str, Any] | None) -> dict[str, str] | None:
    """Drops unset query parameters; booleans as the API spells them."""
    if not query:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query.items() if v is not None}


def build(request: Request[Any]) -> dict[str, Any]:
    """Keyword arguments of ``httpx.Client.request`` for a call."""
    kwargs: dict[str, Any] = {"params": params(request.query)}
    if request.body is not None:
        kwargs["json"] = request.body
    return kwargs


def result(request: Request[T], response: httpx.Response) -> T:
    """The value of a successful answer."""
    if response.status_code == 204 or not response.content:
        return None  # type: ignore[return-value]
    value: Any = response.json()
    return value[request.extract] if request.extract else value  # type: ignore[no-any-return]


def to_error(response: httpx.Response) -> ApiError:
    """The typed error of an error answer."""
    body: dict[str, Any]
    try:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            raise ValueError("not an error body")
    except (ValueError, json.JSONDecodeError):
        # Not the gateway's error body (a proxy in between, say): keep what there is.
        body = {"error": response.text or response.reason_phrase, "code": f"http_{response.status_code}", "requestId": ""}
    request_id = body.get("requestId") or response.headers.get("x-request-id") or None
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None and isinstance(body.get("retryAfter"), (int, float)):
        retry_after = float(body["retryAfter"])
    return error_class_for(response.status_code)(response.status_code, body, request_id, retry_after)


def parse_retry_after(header: str | None) -> float | None:
    """``Retry-After`` is delta-seconds or an HTTP date."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        at = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, at.timestamp() - time.time())


def retry_delay(config: ClientConfig, error: ApiError, attempt: int) -> float | None:
    """Seconds to wait before sending again, or ``None`` to raise ``error``: only 429 and 503
    are retried, at most ``max_retries`` times, never waiting longer than ``max_retry_delay``."""
    if error.status not in (429, 503) or attempt >= config.max_retries:
        return None
    delay = error.retry_after if error.retry_after is not None else DEFAULT_BACKOFF_SECONDS * 2**attempt
    return None if delay > config.max_retry_delay else delay


def auth_headers(api_key: str, key_header: str, tenant_id: str | None, tenant_header: str) -> dict[str, str]:
    """Headers identifying a tenant caller (the gateway's ``apiKeyHeader`` and ``tenantIdHeader``)."""
    if not api_key:
        raise ValueError("api_key is required")
    headers = {key_header: f"Bearer {api_key}" if key_header.lower() == "authorization" else api_key}
    if tenant_id:
        headers[tenant_header] = tenant_id
    return headers
