/**
 * The SIP stack: codec (pure), transport interface, transactions (RFC 3261 section
 * 17), and the UAS core that answers what the stack can answer on its own.
 *
 * @module
 */
export type {
  CSeq,
  NameAddr,
  Param,
  SipHeader,
  SipMessage,
  SipRequest,
  SipResponse,
  SipUri,
  Via,
} from "./message.ts";
export { BRANCH_MAGIC_COOKIE, branchOf, paramValue, tagOf } from "./message.ts";
export { SipParseError } from "./errors.ts";
export type { SipParseErrorCode } from "./errors.ts";
export {
  formatNameAddr,
  formatParams,
  formatUri,
  formatVia,
  parseCSeq,
  parseNameAddr,
  parseUri,
  parseVia,
} from "./grammar.ts";
export { canonicalHeaderName, headerLines, headerValue, headerValues, splitHeaderList } from "./headers.ts";
export { DEFAULT_PARSE_LIMITS, interpretFrame, isKeepAlive, parseFrame, parseMessage } from "./parse.ts";
export type { ParseLimits, SipFrame } from "./parse.ts";
export { serializeMessage } from "./serialize.ts";
export { buildRequest, buildResponse, reasonPhrase, replaceTopVia } from "./build.ts";
export type { RequestInit, ResponseOptions } from "./build.ts";
