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
export { buildRequest, buildResponse, randomTag, reasonPhrase, replaceTopVia } from "./build.ts";
export type { RequestInit, ResponseOptions } from "./build.ts";
export { DEFAULT_TIMERS, FakeClock, realClock } from "./clock.ts";
export type { CancelTimer, Clock, TimerValues } from "./clock.ts";
export { bareHost, defaultPort, formatHost, isReliable } from "./transport.ts";
export type { Datagram, SipAddress, SipTransport, TransportName } from "./transport.ts";
export { UdpTransport } from "./transport_udp.ts";
export type { UdpTransportOptions } from "./transport_udp.ts";
export { DEFAULT_STREAM_LIMITS, StreamTransport } from "./transport_stream.ts";
export type {
  ConnectionClosure,
  ConnectionRefusal,
  StreamCounters,
  StreamLimits,
  StreamSocket,
} from "./transport_stream.ts";
export { TcpTransport } from "./transport_tcp.ts";
export type { TcpTransportOptions } from "./transport_tcp.ts";
export { TlsTransport } from "./transport_tls.ts";
export type { TlsTransportOptions } from "./transport_tls.ts";
export { DEFAULT_FRAMER_LIMITS, StreamFramer } from "./stream_framer.ts";
export type { Frame, FramerLimits } from "./stream_framer.ts";
export type { TerminationReason } from "./transaction.ts";
export { ServerInviteTransaction } from "./transaction_server_invite.ts";
export type { ServerInviteState } from "./transaction_server_invite.ts";
export { ServerNonInviteTransaction } from "./transaction_server_non_invite.ts";
export type { ServerNonInviteState } from "./transaction_server_non_invite.ts";
export {
  ClientNonInviteTransaction,
  TransactionTimeoutError,
  TransportError,
} from "./transaction_client_non_invite.ts";
export type { ClientNonInviteState } from "./transaction_client_non_invite.ts";
export {
  clientTransactionKey,
  responseDestination,
  serverTransactionKey,
  TransactionLayer,
} from "./transaction_layer.ts";
export type { ServerTransaction, TransactionLayerOptions, TransactionUser } from "./transaction_layer.ts";
export { LogRateLimit, SipEndpoint, stampVia } from "./endpoint.ts";
export type { DropReason, EndpointCounters, EndpointOptions } from "./endpoint.ts";
export { DEFAULT_ALLOWED_SOURCES, parseCidr, parseIpAddress, SourceAllowlist } from "./source_allowlist.ts";
export type { CidrBlock } from "./source_allowlist.ts";
export { UasCore } from "./uas_core.ts";
export { DialogManager, IncomingCall } from "./dialog.ts";
export type { CallController } from "./dialog.ts";
export { Dialog } from "./dialog_session.ts";
export type { DialogEvents, DialogOptions, DialogState, EndReason, SessionTimer } from "./dialog_session.ts";
export type { UasCoreOptions, UasHandler } from "./uas_core.ts";
