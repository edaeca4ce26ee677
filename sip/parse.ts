/**
 * SIP message parser (RFC 3261 section 7): bytes in, typed message out, or a
 * `SipParseError` naming the problem. No I/O, no clock.
 *
 * Two steps, both exported: `parseFrame` splits a datagram into start line, header
 * lines and body (framing, limits, folding, Content-Length); `interpretFrame` checks
 * the start line and the mandatory headers and builds the typed message. A transport
 * that gets a frame but no message can still answer `400` from the frame.
 */
import { SipParseError } from "./errors.ts";
import {
  checkCallId,
  isAbsoluteUri,
  isToken,
  parseCSeq,
  parseDeltaSeconds,
  parseNameAddr,
  parseUri,
  parseVia,
} from "./grammar.ts";
import { canonicalHeaderName, splitHeaderList, trimLws } from "./headers.ts";
import type { NameAddr, SipHeader, SipMessage, SipRequest, SipResponse, Via } from "./message.ts";

/** Limits on what the parser accepts; every field has a default. */
export interface ParseLimits {
  /** Largest datagram, in bytes. Default 65535 (the UDP maximum). */
  readonly maxMessageBytes?: number;
  /** Most header lines after unfolding. Default 256. */
  readonly maxHeaders?: number;
  /** Longest physical line of the header section, in bytes. Default 8192. */
  readonly maxLineLength?: number;
}

export const DEFAULT_PARSE_LIMITS: Required<ParseLimits> = {
  maxMessageBytes: 65535,
  maxHeaders: 256,
  maxLineLength: 8192,
};

/** A framed but not yet interpreted message. */
export interface SipFrame {
  readonly startLine: string;
  readonly headers: readonly SipHeader[];
  readonly body: Uint8Array;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Index just past the empty line ending the header section, and where it starts. */
function findHeaderEnd(bytes: Uint8Array, from: number): { end: number; body: number } {
  for (let i = from; i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return { end: i, body: i + 2 };
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { end: i, body: i + 3 };
  }
  return { end: -1, body: -1 };
}

/** True for a datagram of nothing but CR/LF: a keep-alive (RFC 5626 section 4.4.1). */
export function isKeepAlive(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return true;
  for (const b of bytes) if (b !== 0x0d && b !== 0x0a) return false;
  return true;
}

/**
 * Splits bytes into start line, unfolded header lines and body. `headerOnly`: the bytes
 * are a header section whose body was not read (a stream refused it), so Content-Length
 * is not checked against them and the body is empty.
 */
export function parseFrame(bytes: Uint8Array, limits: ParseLimits = {}, headerOnly = false): SipFrame {
  const maxBytes = limits.maxMessageBytes ?? DEFAULT_PARSE_LIMITS.maxMessageBytes;
  const maxHeaders = limits.maxHeaders ?? DEFAULT_PARSE_LIMITS.maxHeaders;
  const maxLine = limits.maxLineLength ?? DEFAULT_PARSE_LIMITS.maxLineLength;
  if (bytes.length > maxBytes) {
    throw new SipParseError("too-large", `Message of ${bytes.length} bytes exceeds ${maxBytes}`);
  }
  // Section 7.5: CRLFs before the start line are ignored.
  let start = 0;
  while (start < bytes.length && (bytes[start] === 0x0d || bytes[start] === 0x0a)) start++;
  const { end, body: bodyStart } = findHeaderEnd(bytes, start);
  if (end === -1) {
    throw new SipParseError("no-header-end", "Message has no empty line after its headers");
  }
  let head: string;
  try {
    head = decoder.decode(bytes.subarray(start, end));
  } catch (cause) {
    throw new SipParseError("bad-encoding", "Header section is not valid UTF-8", { cause });
  }
  const lines = head.split("\n");
  const startLine = stripCr(lines[0] ?? "");
  if (startLine.length > maxLine) {
    throw new SipParseError("line-too-long", `Start line longer than ${maxLine} bytes`);
  }
  const headers: SipHeader[] = [];
  let contentLength: number | undefined;
  let pendingName: string | undefined;
  let pendingValue = "";
  const flush = (): void => {
    if (pendingName === undefined) return;
    const value = trimLws(pendingValue);
    if (canonicalHeaderName(pendingName) === "Content-Length") {
      const n = parseContentLength(value);
      if (contentLength !== undefined && contentLength !== n) {
        throw new SipParseError("bad-content-length", "Conflicting Content-Length headers", {
          header: "Content-Length",
        });
      }
      contentLength = n;
    } else {
      if (headers.length >= maxHeaders) {
        throw new SipParseError("too-many-headers", `More than ${maxHeaders} header lines`);
      }
      headers.push({ name: pendingName, value });
    }
    pendingName = undefined;
  };
  for (let i = 1; i < lines.length; i++) {
    const line = stripCr(lines[i] as string);
    if (line.length > maxLine) {
      throw new SipParseError("line-too-long", `Header line ${i + 1} longer than ${maxLine} bytes`);
    }
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      // Line folding (section 7.3.1): the continuation joins with one space.
      if (pendingName === undefined) {
        throw new SipParseError("bad-header", `Line ${i + 1} continues no header`);
      }
      pendingValue = `${trimLws(pendingValue)} ${trimLws(line)}`;
      continue;
    }
    flush();
    const colon = line.indexOf(":");
    const name = colon === -1 ? "" : trimLws(line.slice(0, colon));
    if (!isToken(name)) {
      throw new SipParseError("bad-header", `Cannot parse header line ${i + 1}: "${line}"`);
    }
    pendingName = name;
    pendingValue = line.slice(colon + 1);
  }
  flush();
  const rest = bytes.subarray(bodyStart);
  let body: Uint8Array;
  if (headerOnly) {
    body = new Uint8Array(0);
  } else if (contentLength === undefined) {
    body = rest.slice(); // UDP: the body runs to the end of the datagram (18.3).
  } else if (contentLength > rest.length) {
    throw new SipParseError(
      "bad-content-length",
      `Content-Length ${contentLength} exceeds the ${rest.length} bytes of body received`,
      { header: "Content-Length" },
    );
  } else {
    body = rest.slice(0, contentLength); // Extra octets are discarded (18.3).
  }
  return { startLine, headers, body };
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function parseContentLength(value: string): number {
  if (!/^\d{1,10}$/.test(value)) {
    throw new SipParseError("bad-content-length", `Cannot parse header 'Content-Length': "${value}"`, {
      header: "Content-Length",
    });
  }
  return Number(value);
}

function headerError(header: string, cause: unknown): SipParseError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new SipParseError("bad-header", `Cannot parse header '${header}': ${detail}`, {
    header,
    cause,
  });
}

function missing(header: string): SipParseError {
  return new SipParseError("missing-header", `Missing mandatory header '${header}'`, { header });
}

const SIP_VERSION = /^SIP\/2\.0$/i;
const ANY_VERSION = /^SIP\/\d+\.\d+$/i;
const RFC1123_DATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * Control characters other than HTAB have no place in a start line or header value
 * (RFC 3261 section 25.1: TEXT-UTF8char, LWS); CR and LF are gone after unfolding.
 * The one exception is a quoted-pair inside a quoted string (`"\\<NUL>"`, RFC 4475
 * section 3.1.1.4), which may escape any of them but CR and LF.
 */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTER = /[\x00-\x08\x0a-\x1f\x7f]/;

function controlCharacter(text: string): string | undefined {
  if (!CONTROL_CHARACTER.test(text)) return undefined; // the usual case: one regex test
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quoted && c === 0x5c && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next === 0x0a || next === 0x0d) return `0x${next.toString(16).padStart(2, "0")}`;
      i++; // quoted-pair: the escaped character, whatever it is
      continue;
    }
    if (c === 0x22) quoted = !quoted;
    else if ((c < 0x20 && c !== 0x09) || c === 0x7f) return `0x${c.toString(16).padStart(2, "0")}`;
  }
  return undefined;
}

/** Checks the start line and headers of a frame and builds the typed message. */
export function interpretFrame(frame: SipFrame): SipMessage {
  const { startLine, headers, body } = frame;
  const badInStartLine = controlCharacter(startLine);
  if (badInStartLine !== undefined) {
    throw new SipParseError("bad-start-line", `Control character ${badInStartLine} in the start line`);
  }
  const via: Via[] = [];
  let from: NameAddr | undefined;
  let to: NameAddr | undefined;
  let callId: string | undefined;
  let cseq: { seq: number; method: string } | undefined;
  let maxForwards: number | undefined;
  for (const h of headers) {
    const name = canonicalHeaderName(h.name);
    try {
      const bad = controlCharacter(h.value);
      if (bad !== undefined) throw new Error(`control character ${bad} in the value`);
      switch (name) {
        case "Via":
          for (const v of splitHeaderList(h.value)) via.push(parseVia(v));
          break;
        case "From":
          if (from !== undefined) throw new Error("more than one From");
          from = parseNameAddr(h.value);
          break;
        case "To":
          if (to !== undefined) throw new Error("more than one To");
          to = parseNameAddr(h.value);
          break;
        case "Call-ID":
          if (callId !== undefined) throw new Error("more than one Call-ID");
          callId = checkCallId(h.value);
          break;
        case "CSeq":
          if (cseq !== undefined) throw new Error("more than one CSeq");
          cseq = parseCSeq(h.value);
          break;
        case "Max-Forwards":
          if (!/^\d{1,9}$/.test(h.value) || Number(h.value) > 255) {
            throw new Error(`"${h.value}" is not 0..255`);
          }
          maxForwards = Number(h.value);
          break;
        case "Contact":
          if (h.value !== "*") {
            for (const c of splitHeaderList(h.value)) {
              const addr = parseNameAddr(c);
              for (const p of addr.params) {
                if (p.name.toLowerCase() === "expires") parseDeltaSeconds(p.value ?? "");
              }
            }
          }
          break;
        case "Route":
        case "Record-Route":
          for (const r of splitHeaderList(h.value)) parseNameAddr(r);
          break;
        case "Expires":
        case "Min-Expires":
          parseDeltaSeconds(h.value);
          break;
        case "Retry-After":
          parseDeltaSeconds(h.value.split(/[ \t;(]/)[0] ?? "");
          break;
        case "Warning":
          for (const w of splitHeaderList(h.value)) {
            if (!/^\d{3} \S+ "/.test(w)) throw new Error(`bad warning "${w}"`);
          }
          break;
        case "Date":
          if (!RFC1123_DATE.test(h.value)) throw new Error(`"${h.value}" is not an RFC 1123 GMT date`);
          break;
      }
    } catch (cause) {
      throw headerError(name, cause);
    }
  }
  if (via.length === 0) throw missing("Via");
  if (from === undefined) throw missing("From");
  if (to === undefined) throw missing("To");
  if (callId === undefined) throw missing("Call-ID");
  if (cseq === undefined) throw missing("CSeq");

  if (startLine.startsWith("SIP/") || startLine.startsWith("sip/")) {
    const m = /^(SIP\/\d+\.\d+) (\d{3})(?: (.*))?$/i.exec(startLine);
    if (m === null) throw new SipParseError("bad-start-line", `Cannot parse status line "${startLine}"`);
    if (!SIP_VERSION.test(m[1] as string)) {
      throw new SipParseError("bad-version", `Unsupported SIP version "${m[1]}"`);
    }
    const status = Number(m[2]);
    if (status < 100 || status > 699) {
      throw new SipParseError("bad-start-line", `Status code ${status} out of range`);
    }
    const response: SipResponse = {
      kind: "response",
      status,
      reason: m[3] ?? "",
      headers,
      body,
      via,
      from,
      to,
      callId,
      cseq,
    };
    return response;
  }
  const parts = startLine.split(" ");
  if (parts.length !== 3) {
    throw new SipParseError(
      "bad-start-line",
      `Cannot parse request line "${startLine}": expected Method SP Request-URI SP SIP-Version`,
    );
  }
  const [method, uri, version] = parts as [string, string, string];
  if (!isToken(method)) throw new SipParseError("bad-start-line", `Bad method "${method}"`);
  if (!SIP_VERSION.test(version)) {
    throw new SipParseError(
      ANY_VERSION.test(version) ? "bad-version" : "bad-start-line",
      `Unsupported SIP version "${version}"`,
    );
  }
  if (!isAbsoluteUri(uri)) throw new SipParseError("bad-start-line", `Bad Request-URI "${uri}"`);
  const scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
  if (scheme === "sip" || scheme === "sips") {
    try {
      if (parseUri(uri).headers.length > 0) throw new Error("headers are not allowed in a Request-URI");
    } catch (cause) {
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new SipParseError("bad-start-line", `Bad Request-URI "${uri}": ${detail}`, { cause });
    }
  }
  if (cseq.method !== method) {
    throw headerError("CSeq", `method "${cseq.method}" does not match request method "${method}"`);
  }
  const base = { kind: "request" as const, method, uri, headers, body, via, from, to, callId, cseq };
  const request: SipRequest = maxForwards === undefined ? base : { ...base, maxForwards };
  return request;
}

/** Parses one datagram into a SIP message; throws `SipParseError` on bad input. */
export function parseMessage(bytes: Uint8Array, limits: ParseLimits = {}): SipMessage {
  return interpretFrame(parseFrame(bytes, limits));
}
