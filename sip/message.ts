/**
 * SIP message model (RFC 3261 section 7). Pure data: produced by the parser or by the
 * builders in `build.ts`, written back to bytes by `serialize.ts`.
 *
 * `headers` keeps every header line as received (order, multiple lines of one name,
 * several values in one line), with folded lines unfolded. Content-Length is not kept
 * there: the serializer computes it from `body`. The typed fields (`via`, `from`, ...)
 * are parsed views of the mandatory headers, validated once at parse time.
 */

/** A `;name=value` or `;flag` parameter (RFC 3261 section 25.1 generic-param). */
export interface Param {
  readonly name: string;
  /** `undefined` for a flag parameter such as `;lr` or `;rport`. */
  readonly value?: string;
}

/** One header line: the name as written, the value unfolded and trimmed. */
export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

/** A SIP or SIPS URI (RFC 3261 section 19.1). */
export interface SipUri {
  readonly scheme: "sip" | "sips";
  readonly user?: string;
  readonly password?: string;
  /** Host name, IPv4 address, or IPv6 reference with its brackets. */
  readonly host: string;
  readonly port?: number;
  readonly params: readonly Param[];
  readonly headers: readonly Param[];
}

/** name-addr or addr-spec with header parameters (From, To, Contact, Route...). */
export interface NameAddr {
  readonly displayName?: string;
  /** The URI as written (absoluteURI); parse it with `parseUri` when needed. */
  readonly uri: string;
  readonly params: readonly Param[];
}

/** One Via value (RFC 3261 section 20.42). */
export interface Via {
  /** Transport as written upper-cased: UDP, TCP, TLS, SCTP, WS... */
  readonly transport: string;
  readonly host: string;
  readonly port?: number;
  readonly params: readonly Param[];
}

/** CSeq (RFC 3261 section 20.16). */
export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

interface SipMessageCommon {
  readonly headers: readonly SipHeader[];
  readonly body: Uint8Array;
  /** All Via values, top first. */
  readonly via: readonly Via[];
  readonly from: NameAddr;
  readonly to: NameAddr;
  readonly callId: string;
  readonly cseq: CSeq;
}

export interface SipRequest extends SipMessageCommon {
  readonly kind: "request";
  readonly method: string;
  /** Request-URI as written. */
  readonly uri: string;
  /** Max-Forwards when present (0..255). */
  readonly maxForwards?: number;
}

export interface SipResponse extends SipMessageCommon {
  readonly kind: "response";
  readonly status: number;
  readonly reason: string;
}

export type SipMessage = SipRequest | SipResponse;

/** Magic cookie of RFC 3261 branches (section 8.1.1.7). */
export const BRANCH_MAGIC_COOKIE = "z9hG4bK";

/** Value of a parameter by case-insensitive name; `""` for a flag, `undefined` if absent. */
export function paramValue(
  params: readonly Param[],
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  for (const p of params) {
    if (p.name.toLowerCase() === lower) return p.value ?? "";
  }
  return undefined;
}

/** The `tag` parameter of a From or To value. */
export function tagOf(addr: NameAddr): string | undefined {
  const tag = paramValue(addr.params, "tag");
  return tag === "" ? undefined : tag;
}

/** The `branch` parameter of a Via. */
export function branchOf(via: Via): string | undefined {
  const b = paramValue(via.params, "branch");
  return b === "" ? undefined : b;
}
