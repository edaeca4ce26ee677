/**
 * What the agent learns of the caller beyond the numbers (CONTRACTS.md 7.2), pure:
 * - the INVITE's headers named by `SIP_SIGNALING_SERVICE_FORWARD_HEADERS` (carriers'
 *   `X-` headers: a customer id, a campaign) go into `call.started` as `sipHeaders`,
 *   keys in lower case, several values of one header joined with ", ";
 * - the caller is P-Asserted-Identity's number when the INVITE carries one (RFC 3325:
 *   the gateway's network asserts it; carriers put the real caller there when From is
 *   anonymous), else From's;
 * - DTMF that arrives as SIP INFO (`application/dtmf-relay`, `application/dtmf`).
 */
import { headerValue, parseNameAddr, type SipHeader, type SipRequest, splitHeaderList } from "../sip/mod.ts";

/** Header name patterns: exact names, or a prefix with `*` (`X-*`), case-insensitive. */
export class HeaderPatterns {
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];

  constructor(spec: string) {
    for (const raw of spec.split(",")) {
      const name = raw.trim().toLowerCase();
      if (name === "") continue;
      if (name.endsWith("*")) this.#prefixes.push(name.slice(0, -1));
      else this.#exact.add(name);
    }
  }

  matches(name: string): boolean {
    const lower = name.toLowerCase();
    return this.#exact.has(lower) || this.#prefixes.some((p) => lower.startsWith(p));
  }

  get empty(): boolean {
    return this.#exact.size === 0 && this.#prefixes.length === 0;
  }
}

/** The headers `patterns` name, keys in lower case, repeated headers joined with ", ". */
export function forwardedHeaders(
  headers: readonly SipHeader[],
  patterns: HeaderPatterns,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (patterns.empty) return out;
  for (const h of headers) {
    if (!patterns.matches(h.name)) continue;
    const key = h.name.toLowerCase();
    out[key] = key in out ? `${out[key]}, ${h.value}` : h.value;
  }
  return out;
}

/**
 * The URI that names the caller: the first P-Asserted-Identity value (RFC 3325 section
 * 9.1; a `sip:`/`sips:` or `tel:` URI), else From's URI.
 */
export function callerUri(request: SipRequest): string {
  const pai = headerValue(request.headers, "P-Asserted-Identity");
  if (pai !== undefined) {
    for (const value of splitHeaderList(pai)) {
      try {
        const uri = parseNameAddr(value).uri;
        if (/^(sips?|tel):/i.test(uri)) return uri;
      } catch {
        const bare = /<([^>]+)>/.exec(value)?.[1] ?? value.trim();
        if (/^tel:/i.test(bare)) return bare;
      }
    }
  }
  return request.from.uri;
}

/** One key press from an INFO body, or undefined when the body is not DTMF. */
export interface DtmfPress {
  readonly digit: string;
  readonly durationMs: number;
}

const DIGITS = "0123456789*#ABCD";

/** RFC 4733 event codes 10-15 are * # A B C D; some carriers send those numbers in `Signal=`. */
function digitOf(signal: string): string | undefined {
  const s = signal.trim().toUpperCase();
  if (s.length === 1 && DIGITS.includes(s)) return s;
  if (/^1[0-5]$/.test(s)) return DIGITS[Number(s)];
  return undefined;
}

/**
 * DTMF in an INFO (the de facto formats): `application/dtmf-relay` with `Signal=5` and
 * `Duration=160` lines, or `application/dtmf` whose body is the digit (optionally with
 * the same lines). Anything else is not DTMF.
 */
export function dtmfOf(request: SipRequest): DtmfPress | undefined {
  const type = headerValue(request.headers, "Content-Type")?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/dtmf-relay" && type !== "application/dtmf") return undefined;
  const text = new TextDecoder().decode(request.body).trim();
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const eq = line.indexOf("=");
    if (eq > 0) fields.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  const signal = fields.get("signal") ?? (type === "application/dtmf" ? text : undefined);
  const digit = signal === undefined ? undefined : digitOf(signal);
  if (digit === undefined) return undefined;
  const duration = Number(fields.get("duration") ?? "");
  return { digit, durationMs: Number.isInteger(duration) && duration >= 0 ? duration : 0 };
}
