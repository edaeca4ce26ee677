/**
 * Building messages the stack sends: responses to requests (RFC 3261 section 8.2.6)
 * and new requests. Everything built here goes through the same checks as parsed
 * input, so a built message and its parsed bytes are equal.
 */
import { formatVia } from "./grammar.ts";
import { canonicalHeaderName, splitHeaderList } from "./headers.ts";
import type { Param, SipHeader, SipRequest, SipResponse, Via } from "./message.ts";
import { interpretFrame } from "./parse.ts";

/** Reason phrases of RFC 3261 section 21 and the extensions this stack answers with. */
const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: "Trying",
  180: "Ringing",
  183: "Session Progress",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  415: "Unsupported Media Type",
  420: "Bad Extension",
  422: "Session Interval Too Small",
  480: "Temporarily Unavailable",
  481: "Call/Transaction Does Not Exist",
  482: "Loop Detected",
  483: "Too Many Hops",
  486: "Busy Here",
  487: "Request Terminated",
  488: "Not Acceptable Here",
  491: "Request Pending",
  500: "Server Internal Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Server Time-out",
  505: "Version Not Supported",
  513: "Message Too Large",
  603: "Decline",
};

export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? (status < 300 ? "OK" : "Error");
}

export interface ResponseOptions {
  /** Reason phrase; default from RFC 3261 section 21. */
  readonly reason?: string;
  /** To-tag to add when the request's To has none (not used for 100). */
  readonly toTag?: string;
  /** Headers written after the copied ones. */
  readonly headers?: readonly SipHeader[];
  readonly body?: Uint8Array;
}

const COPIED = new Set(["Via", "From", "To", "Call-ID", "CSeq"]);

/**
 * A response to `request` (section 8.2.6.2): Via lines, From, To, Call-ID and CSeq
 * copied in order, a To-tag added when asked, Timestamp echoed on 100 (8.2.6.1).
 */
export function buildResponse(
  request: SipRequest,
  status: number,
  options: ResponseOptions = {},
): SipResponse {
  const headers: SipHeader[] = [];
  let to = request.to;
  for (const h of request.headers) {
    const name = canonicalHeaderName(h.name);
    if (!COPIED.has(name) && !(name === "Timestamp" && status === 100)) continue;
    if (name === "To" && options.toTag !== undefined && status !== 100 && !hasTag(to.params)) {
      to = { ...to, params: [...to.params, { name: "tag", value: options.toTag }] };
      headers.push({ name: h.name, value: `${h.value};tag=${options.toTag}` });
      continue;
    }
    headers.push(h);
  }
  if (options.headers !== undefined) headers.push(...options.headers);
  return {
    kind: "response",
    status,
    reason: options.reason ?? reasonPhrase(status),
    headers,
    body: options.body ?? new Uint8Array(0),
    via: request.via,
    from: request.from,
    to,
    callId: request.callId,
    cseq: request.cseq,
  };
}

function hasTag(params: readonly Param[]): boolean {
  return params.some((p) => p.name.toLowerCase() === "tag");
}

export interface RequestInit {
  readonly method: string;
  readonly uri: string;
  /** All headers, Via, From, To, Call-ID, CSeq and Max-Forwards included. */
  readonly headers: readonly SipHeader[];
  readonly body?: Uint8Array;
}

/** A new request, checked like parsed input; throws `SipParseError` if malformed. */
export function buildRequest(init: RequestInit): SipRequest {
  const message = interpretFrame({
    startLine: `${init.method} ${init.uri} SIP/2.0`,
    headers: init.headers,
    body: init.body ?? new Uint8Array(0),
  });
  if (message.kind !== "request") throw new TypeError("buildRequest built a response");
  return message;
}

/**
 * The request with its top Via replaced (used to stamp `received`/`rport`, RFC 3261
 * section 18.2.1 and RFC 3581 section 4).
 */
export function replaceTopVia(request: SipRequest, via: Via): SipRequest {
  const headers = [...request.headers];
  const index = headers.findIndex((h) => canonicalHeaderName(h.name) === "Via");
  const line = headers[index];
  if (line === undefined) return request;
  const values = splitHeaderList(line.value);
  values[0] = formatVia(via);
  headers[index] = { name: line.name, value: values.join(", ") };
  return { ...request, headers, via: [via, ...request.via.slice(1)] };
}

/** A random token for To-tags (section 19.3: at least 32 bits of randomness). */
export function randomTag(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
