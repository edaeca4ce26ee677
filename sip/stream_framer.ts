/**
 * SIP messages out of a byte stream (TCP, TLS), pure: RFC 3261 section 18.3 frames a
 * message by its Content-Length, which a stream requires (a message without one gets
 * 400 and the connection is closed); section 7.5 ignores CRLFs before a start line;
 * RFC 5626 section 3.5.1's keep-alive is a double CRLF (ping), answered with one CRLF
 * (pong). Bytes arrive in any pieces: several messages in one read, one message over
 * many reads.
 *
 * Limits: a header section longer than `maxHeaderBytes` cannot be framed and ends the
 * connection; a body longer than `maxBodyBytes` is refused (513, RFC 3261 21.5.14) and
 * skipped, so the messages after it on the same connection still arrive.
 */

export interface FramerLimits {
  /** Longest header section (start line to the empty line), bytes. */
  readonly maxHeaderBytes: number;
  /** Longest body, bytes. */
  readonly maxBodyBytes: number;
}

/** 16 KiB of header and 32 KiB of body stay under the parser's 64 KiB message limit. */
export const DEFAULT_FRAMER_LIMITS: FramerLimits = { maxHeaderBytes: 16 * 1024, maxBodyBytes: 32 * 1024 };

export type Frame =
  /** One whole message: header section and exactly Content-Length body bytes. */
  | { readonly kind: "message"; readonly bytes: Uint8Array }
  /** A keep-alive ping (CRLF CRLF); the answer is one CRLF. */
  | { readonly kind: "ping" }
  /**
   * A message that cannot be taken. `header` is its header section when it was read
   * whole (to answer a request with `status`); `close`: the stream cannot be followed
   * past it, the connection must end.
   */
  | {
    readonly kind: "refused";
    readonly status: 400 | 513;
    readonly reason: string;
    readonly header: Uint8Array | undefined;
    readonly close: boolean;
  };

const CR = 13;
const LF = 10;
const EMPTY = new Uint8Array(0);

/** Index of the first CRLF CRLF at or after `from`, or -1. */
function headerEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(from, 0); i + 3 < bytes.length; i++) {
    if (bytes[i] === CR && bytes[i + 1] === LF && bytes[i + 2] === CR && bytes[i + 3] === LF) return i;
  }
  return -1;
}

/**
 * The Content-Length of a header section (long or compact `l` form, any case), undefined
 * when absent, NaN when present but not a number or when given twice with two values.
 */
export function contentLength(header: string): number | undefined {
  let found: number | undefined;
  for (const line of header.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name !== "content-length" && name !== "l") continue;
    const value = line.slice(colon + 1).trim();
    const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
    if (found !== undefined && found !== n) return NaN;
    found = n;
  }
  return found;
}

export class StreamFramer {
  readonly #limits: FramerLimits;
  #buffer: Uint8Array = EMPTY;
  /** Where the search for the end of the header section resumes. */
  #scanned = 0;
  /** Body bytes of a refused message still to be skipped. */
  #skip = 0;
  #closed = false;
  readonly #decoder = new TextDecoder();

  constructor(limits: FramerLimits = DEFAULT_FRAMER_LIMITS) {
    this.#limits = limits;
  }

  /** Bytes held for a message not yet whole. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Takes the next bytes of the stream; returns what they complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    if (this.#closed) return [];
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
    }
    this.#append(chunk);
    const frames: Frame[] = [];
    for (;;) {
      const frame = this.#next();
      if (frame === undefined) break;
      frames.push(frame);
      if (frame.kind === "refused" && frame.close) {
        this.#closed = true;
        this.#buffer = EMPTY;
        break;
      }
    }
    return frames;
  }

  #append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.#buffer.length === 0) {
      this.#buffer = chunk.slice();
      return;
    }
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
  }

  #consume(n: number): void {
    this.#buffer = n >= this.#buffer.length ? EMPTY : this.#buffer.subarray(n);
    this.#scanned = 0;
  }

  #next(): Frame | undefined {
    const b = this.#buffer;
    // Between messages: CRLF CRLF is a ping, a lone CRLF is ignored (RFC 3261 7.5).
    if (b[0] === CR) {
      if (b.length < 2) return undefined;
      if (b[1] === LF) {
        if (b.length < 4 && (b.length < 3 || b[2] === CR)) return undefined;
        if (b[2] === CR && b[3] === LF) {
          this.#consume(4);
          return { kind: "ping" };
        }
        this.#consume(2);
        return this.#next();
      }
    }
    if (b.length === 0) return undefined;
    const end = headerEnd(b, this.#scanned - 3);
    if (end < 0) {
      this.#scanned = b.length;
      if (b.length > this.#limits.maxHeaderBytes) {
        return {
          kind: "refused",
          status: 513,
          reason: "header section too large",
          header: undefined,
          close: true,
        };
      }
      return undefined;
    }
    const header = b.subarray(0, end + 4);
    if (header.length > this.#limits.maxHeaderBytes) {
      this.#consume(b.length);
      return { kind: "refused", status: 513, reason: "header section too large", header, close: true };
    }
    const length = contentLength(this.#decoder.decode(header));
    if (length === undefined || Number.isNaN(length)) {
      this.#consume(b.length);
      return {
        kind: "refused",
        status: 400,
        reason: length === undefined ? "Missing Content-Length" : "Bad Content-Length",
        header: header.slice(),
        close: true,
      };
    }
    if (length > this.#limits.maxBodyBytes) {
      const held = b.length - header.length;
      const copy = header.slice();
      this.#consume(header.length + Math.min(length, held));
      this.#skip = Math.max(0, length - held);
      return { kind: "refused", status: 513, reason: "body too large", header: copy, close: false };
    }
    if (b.length < header.length + length) return undefined;
    const message = b.slice(0, header.length + length);
    this.#consume(header.length + length);
    return { kind: "message", bytes: message };
  }
}
