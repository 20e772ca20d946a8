"""Errors the SDK raises.

Every answer of the gateway that is not a success becomes an :class:`ApiError` (or one of its
subclasses, chosen by status) carrying the documented error body ``{error, code, requestId, ...}``;
a request that got no answer at all is an :class:`ApiConnectionError`.
"""

from __future__ import annotations

from typing import Any


class ConnectorsError(Exception):
    """Base class of everything the SDK raises."""


class ApiError(ConnectorsError):
    """The gateway answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any], request_id: str | None, retry_after: float | None) -> None:
        super().__init__(f"{status} {body.get('code')}: {body.get('error')}")
        #: HTTP status code.
        self.status = status
        #: Machine code of the error body, e.g. ``not_found``, ``rate_limited``.
        self.code: str = str(body.get("code"))
        #: The request id (body ``requestId``, else the ``X-Request-Id`` header).
        self.request_id = request_id
        #: Seconds to wait before retrying (``Retry-After``, else body ``retryAfter``), when given.
        self.retry_after = retry_after
        #: The whole error body, for the fields some errors add (``quota``, ``limit``, ``used``).
        self.body = body


class InvalidRequestError(ApiError):
    """400 / 422: the request is malformed or does not fit the contract."""


class AuthenticationError(ApiError):
    """401: missing or invalid key."""


class PermissionDeniedError(ApiError):
    """403: forbidden, tenant mismatch, suspended tenant, quota exceeded, feature disabled, IP not allowed."""


class NotFoundError(ApiError):
    """404: no such tenant, tool, server or integration."""


class ConflictError(ApiError):
    """409: conflict, or ``oauth_required`` on invoke."""


class RateLimitError(ApiError):
    """429: over a rate limit; :attr:`retry_after` says for how long."""


class UpstreamError(ApiError):
    """502 / 504: the tool's MCP server failed or timed out."""


class UnavailableError(ApiError):
    """503: temporarily unavailable; :attr:`retry_after` says when to retry."""


class InternalServerError(ApiError):
    """Any other 5xx."""


class ApiConnectionError(ConnectorsError):
    """No answer: connection refused or reset, DNS failure, or the client's timeout."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    422: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
    502: UpstreamError,
    504: UpstreamError,
    503: UnavailableError,
}


def error_class_for(status: int) -> type[ApiError]:
    """The error class for a status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InternalServerError if status >= 500 else ApiError
