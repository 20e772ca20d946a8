/**
 * Errors the SDK throws. Every answer of the gateway that is not a success becomes an
 * {@link ApiError} (or one of its subclasses, chosen by status), carrying the documented error
 * body `{error, code, requestId, ...}`; a request that got no answer at all is a
 * {@link ConnectionError}.
 */

/** The documented error body, with any extra fields the gateway added (`quota`, `limit`, ...). */
export interface ErrorBody {
  error: string;
  code: string;
  requestId: string;
  retryAfter?: number;
  [field: string]: unknown;
}

/** Base class of everything the SDK throws. */
export class ConnectorsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gateway answered with an error status. */
export class ApiError extends ConnectorsError {
  /** HTTP status code. */
  readonly status: number;
  /** Machine code of the error body, e.g. `not_found`, `rate_limited`. */
  readonly code: string;
  /** The request id (error body `requestId`, else the `X-Request-Id` header). */
  readonly requestId: string | undefined;
  /** Seconds to wait before retrying (`Retry-After` header, else body `retryAfter`), when given. */
  readonly retryAfter: number | undefined;
  /** The whole error body, for the extra fields some errors carry (`quota`, `limit`, `used`). */
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody, requestId: string | undefined, retryAfter: number | undefined) {
    super(`${status} ${body.code}: ${body.error}`);
    this.status = status;
    this.code = body.code;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** 400 / 422: the request is malformed or does not fit the contract. */
export class InvalidRequestError extends ApiError {}
/** 401: missing or invalid key. */
export class AuthenticationError extends ApiError {}
/** 403: forbidden, tenant mismatch, suspended tenant, quota exceeded, feature disabled, IP not allowed. */
export class PermissionDeniedError extends ApiError {}
/** 404: no such tenant, tool, server or integration. */
export class NotFoundError extends ApiError {}
/** 409: conflict, or `oauth_required` on invoke. */
export class ConflictError extends ApiError {}
/** 429: over a rate limit; {@link ApiError.retryAfter} says for how long. */
export class RateLimitError extends ApiError {}
/** 502 / 504: the tool's MCP server failed or timed out. */
export class UpstreamError extends ApiError {}
/** 503: temporarily unavailable; {@link ApiError.retryAfter} says when to retry. */
export class UnavailableError extends ApiError {}
/** Any other 5xx. */
export class InternalServerError extends ApiError {}

/** No answer: connection refused or reset, DNS failure, or the client's timeout. */
export class ConnectionError extends ConnectorsError {}

/** The error class for a status. */
export function errorClassFor(status: number): typeof ApiError {
  switch (status) {
    case 400:
    case 422:
      return InvalidRequestError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 429:
      return RateLimitError;
    case 502:
    case 504:
      return UpstreamError;
    case 503:
      return UnavailableError;
    default:
      return status >= 500 ? InternalServerError : ApiError;
  }
}
