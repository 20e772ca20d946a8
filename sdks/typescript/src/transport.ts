/**
 * One HTTP exchange with the gateway: JSON in and out, the documented error body turned into a
 * typed error, and 429 / 503 answers retried after the `Retry-After` the gateway sent.
 */

import { ApiError, ConnectionError, type ErrorBody, errorClassFor } from "./errors.js";

/** Options common to both clients. */
export interface TransportOptions {
  /** The gateway's address, e.g. `https://gateway.example.com` (a path prefix is kept). */
  baseURL: string;
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /**
   * How many times a request answered 429 or 503 is sent again (default 2; 0 turns retrying
   * off). Each retry waits for the answer's `Retry-After`.
   */
  maxRetries?: number;
  /**
   * The longest wait a retry may take, in milliseconds (default 60 000). An answer asking for a
   * longer wait is thrown at once instead.
   */
  maxRetryDelayMs?: number;
  /** Headers added to every request. */
  headers?: Record<string, string>;
  /** The `fetch` to use (default: the platform's). */
  fetch?: typeof fetch;
}

export type QueryValue = string | number | boolean | undefined | null;

export interface RequestSpec {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, QueryValue> | undefined;
  body?: unknown;
}

/** Wait used for a 503 without `Retry-After`, doubled per attempt. */
const DEFAULT_BACKOFF_MS = 500;

export class Transport {
  private readonly baseURL: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly maxRetryDelayMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly headers: Record<string, string>;

  /** `authHeaders` identify the caller (admin key, or tenant id and key). */
  constructor(options: TransportOptions, authHeaders: Record<string, string>) {
    if (!options.baseURL) throw new TypeError("baseURL is required");
    this.baseURL = options.baseURL.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = Math.max(0, options.maxRetries ?? 2);
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 60_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.headers = { ...options.headers, ...authHeaders };
  }

  /** Sends the request (retrying 429 / 503) and returns the parsed JSON body, `undefined` for 204. */
  async request<T>(spec: RequestSpec): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const response = await this.send(spec);
      if (response.ok) {
        if (response.status === 204) return undefined as T;
        const text = await response.text();
        return (text ? JSON.parse(text) : undefined) as T;
      }
      const error = await toError(response);
      const retryable = response.status === 429 || response.status === 503;
      if (!retryable || attempt >= this.maxRetries) throw error;
      const delayMs =
        error.retryAfter !== undefined ? error.retryAfter * 1000 : DEFAULT_BACKOFF_MS * 2 ** attempt;
      if (delayMs > this.maxRetryDelayMs) throw error;
      await sleep(delayMs);
    }
  }

  private async send(spec: RequestSpec): Promise<Response> {
    const url = this.baseURL + spec.path + queryString(spec.query);
    const headers: Record<string, string> = { accept: "application/json", ...this.headers };
    let body: string | undefined;
    if (spec.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.body);
    }
    try {
      return await this.fetchImpl(url, {
        method: spec.method,
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new ConnectionError(`${spec.method} ${url}: ${describe(cause)}`, { cause });
    }
  }
}

/** Encodes one path segment (ids and names are user input). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.append(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function toError(response: Response): Promise<ApiError> {
  const text = await response.text();
  let body: ErrorBody;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isErrorBody(parsed)) throw new Error("not an error body");
    body = parsed;
  } catch {
    // Not the gateway's error body (a proxy in between, say): keep what there is.
    body = { error: text || response.statusText, code: `http_${response.status}`, requestId: "" };
  }
  const requestId = body.requestId || response.headers.get("x-request-id") || undefined;
  const retryAfter = parseRetryAfter(response.headers.get("retry-after")) ?? numberOrUndefined(body.retryAfter);
  const ErrorClass = errorClassFor(response.status);
  return new ErrorClass(response.status, body, requestId, retryAfter);
}

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === "object" && value !== null && typeof (value as ErrorBody).code === "string";
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** `Retry-After` is delta-seconds or an HTTP date. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function describe(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as Error & { cause?: unknown }).cause;
    return inner instanceof Error ? `${cause.message} (${inner.message})` : cause.message;
  }
  return String(cause);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
