"""Client for the Connectors Gateway HTTP API.

``Connectors`` / ``AsyncConnectors`` speak the tenant API (tools, MCP servers, the tenant);
``AdminAPI`` / ``AsyncAdminAPI`` the admin API. Errors are :class:`ApiError` subclasses carrying
``status``, ``code``, ``request_id`` and ``retry_after``.
"""

from .aio import AsyncAdminAPI, AsyncConnectors
from .client import AdminAPI, Connectors
from .errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    ConflictError,
    ConnectorsError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnavailableError,
    UpstreamError,
)

__all__ = [
    "AdminAPI",
    "ApiConnectionError",
    "ApiError",
    "AsyncAdminAPI",
    "AsyncConnectors",
    "AuthenticationError",
    "ConflictError",
    "Connectors",
    "ConnectorsError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnavailableError",
    "UpstreamError",
]
