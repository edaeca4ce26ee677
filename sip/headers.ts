/**
 * Header names: canonical spelling, compact forms (RFC 3261 section 7.3.3 and the
 * IANA registry), and which headers may carry several comma-separated values in one
 * line (section 7.3.1).
 */
import type { SipHeader } from "./message.ts";

const COMPACT_FORMS: Readonly<Record<string, string>> = {
  i: "Call-ID",
  m: "Contact",
  e: "Content-Encoding",
  l: "Content-Length",
  c: "Content-Type",
  f: "From",
  s: "Subject",
  k: "Supported",
  t: "To",
  v: "Via",
  o: "Event",
  r: "Refer-To",
  u: "Allow-Events",
  b: "Referred-By",
  x: "Session-Expires",
  a: "Accept-Contact",
  j: "Reject-Contact",
  d: "Request-Disposition",
  y: "Identity",
};

const CANONICAL: ReadonlyMap<string, string> = new Map(
  [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
  ].map((n) => [n.toLowerCase(), n]),
);

/** Canonical name for a header name as written: `v` -> `Via`, `cseq` -> `CSeq`. */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  if (lower.length === 1) {
    const long = COMPACT_FORMS[lower];
    if (long !== undefined) return long;
  }
  return CANONICAL.get(lower) ?? name;
}

/** Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1, 20). */
const LIST_HEADERS: ReadonlySet<string> = new Set([
  "Accept",
  "Accept-Contact",
  "Accept-Encoding",
  "Accept-Language",
  "Alert-Info",
  "Allow",
  "Allow-Events",
  "Call-Info",
  "Contact",
  "Content-Encoding",
  "Content-Language",
  "Error-Info",
  "In-Reply-To",
  "P-Asserted-Identity",
  "Proxy-Require",
  "Reason",
  "Record-Route",
  "Reject-Contact",
  "Require",
  "Route",
  "Supported",
  "Unsupported",
  "Via",
  "Warning",
]);

export function isListHeader(canonicalName: string): boolean {
  return LIST_HEADERS.has(canonicalName);
}

/** Trims SP and HTAB only (LWS); `String.trim` would also eat U+FEFF and others. */
export function trimLws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}

/**
 * Splits a header value at top-level commas: not inside a quoted string (with its
 * backslash escapes) nor inside `<...>`. Empty elements are kept so that callers can
 * reject them.
 */
export function splitHeaderList(value: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let inQuotes = false;
  let inAngle = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charCodeAt(i);
    if (inQuotes) {
      if (ch === 0x5c) i++; // quoted-pair
      else if (ch === 0x22) inQuotes = false;
    } else if (ch === 0x22) inQuotes = true;
    else if (ch === 0x3c) inAngle = true;
    else if (ch === 0x3e) inAngle = false;
    else if (ch === 0x2c && !inAngle) {
      parts.push(trimLws(value.slice(start, i)));
      start = i + 1;
    }
  }
  parts.push(trimLws(value.slice(start)));
  return parts;
}

/** Every header line whose canonical name is `name`, in order. */
export function headerLines(
  headers: readonly SipHeader[],
  name: string,
): SipHeader[] {
  const wanted = canonicalHeaderName(name);
  return headers.filter((h) => canonicalHeaderName(h.name) === wanted);
}

/** The first value of a header (first line, unsplit), or `undefined`. */
export function headerValue(
  headers: readonly SipHeader[],
  name: string,
): string | undefined {
  const wanted = canonicalHeaderName(name);
  for (const h of headers) {
    if (canonicalHeaderName(h.name) === wanted) return h.value;
  }
  return undefined;
}

/** All values of a header across lines, each list line split at top-level commas. */
export function headerValues(
  headers: readonly SipHeader[],
  name: string,
): string[] {
  const wanted = canonicalHeaderName(name);
  const list = isListHeader(wanted);
  const out: string[] = [];
  for (const h of headers) {
    if (canonicalHeaderName(h.name) !== wanted) continue;
    if (list) out.push(...splitHeaderList(h.value));
    else out.push(h.value);
  }
  return out;
}
