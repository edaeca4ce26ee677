/**
 * The dialog layer's types and its small pure helpers (RFC 3261 section 12, RFC 4028):
 * what a dialog session needs of the stack (`DialogContext`), what it tells the layer
 * above (`DialogEvents`), its options, and Session-Expires parsing.
 */
import type { Clock, TimerValues } from "./clock.ts";
import { headerValue, headerValues } from "./headers.ts";
import type { SipRequest } from "./message.ts";
import type { ClientNonInviteTransaction } from "./transaction_client_non_invite.ts";
import type { SipAddress, TransportName } from "./transport.ts";
import type { Dialog } from "./dialog_session.ts";

/**
 * Why a call ended, as published in `call.ended`: "normal_clearing" (BYE received),
 * "terminated_by_request" (or the reason TerminateCall gave), "ack_timeout",
 * "session_expired", "max_duration", "drain_timeout", "transferred".
 */
export type EndReason = string;

export type DialogState = "setup" | "confirmed" | "terminated";

export interface DialogOptions {
  /**
   * Address and port for our Contact (the instance that owns the dialog); UDP and TCP
   * share the port, TLS takes the endpoint's TLS port.
   */
  readonly contactHost: string;
  readonly contactPort: number;
  /** Session interval offered when the caller names none, seconds. */
  readonly sessionExpires: number;
  /** Smallest session interval accepted, seconds (Min-SE). */
  readonly minSE: number;
  readonly allow: readonly string[];
  /** Server / User-Agent value; empty: no such header. */
  readonly serverName: string;
  /** A call still up this long after our 200 OK gets BYE (reason "max_duration"); 0 or unset = never. */
  readonly maxCallDurationMs?: number;
}

/** What a dialog needs of the stack around it. */
export interface DialogContext {
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly options: DialogOptions;
  /** Sends our 2xx again (counted as a retransmission). */
  resend(bytes: Uint8Array, destination: SipAddress): void;
  /** Sends an in-dialog request in a new client transaction. */
  sendRequest(request: SipRequest, hop: SipAddress): ClientNonInviteTransaction;
  /** The port we listen on for `protocol` (the Via of our requests). */
  localPort(protocol: TransportName): number;
}

/** What the dialog tells the layer above (the call orchestrator), typed by its per-call data `T`. */
export interface DialogEvents<T> {
  /** The caller's ACK for our 2xx arrived (once per call). `sdp` is the ACK body, if any. */
  onAnswered(dialog: Dialog<T>, ackBody: Uint8Array): void;
  /** The dialog ended (once). */
  onEnded(dialog: Dialog<T>, reason: EndReason): void;
  /** A new offer inside the dialog (re-INVITE/UPDATE); returns the SDP answer, or undefined for 488. */
  answerReoffer(dialog: Dialog<T>, offer: Uint8Array): Uint8Array | undefined;
  /**
   * An INFO or NOTIFY in the dialog, before its 200 (DTMF, a transfer's progress).
   * Returns a status to answer instead of 200 (e.g. 415), or undefined.
   */
  onInDialogRequest?(dialog: Dialog<T>, request: SipRequest): number | undefined;
}

export interface SessionTimer {
  readonly interval: number;
  readonly refresher: "uac" | "uas";
}

/** Parses Session-Expires: delta-seconds *(;refresher=uac|uas) (RFC 4028 section 4). */
export function sessionExpiresOf(
  request: SipRequest,
): { interval: number; refresher?: "uac" | "uas" } | undefined {
  const value = headerValue(request.headers, "Session-Expires");
  if (value === undefined) return undefined;
  const [delta, ...params] = value.split(";").map((s) => s.trim());
  if (delta === undefined || !/^\d+$/.test(delta)) return undefined;
  const refresher = params.find((p) => p.toLowerCase().startsWith("refresher="))?.split("=")[1]
    ?.toLowerCase();
  return refresher === "uac" || refresher === "uas"
    ? { interval: Number(delta), refresher }
    : { interval: Number(delta) };
}

export function supports(request: SipRequest, tag: string): boolean {
  return [...headerValues(request.headers, "Supported"), ...headerValues(request.headers, "Require")]
    .some((t) => t.toLowerCase() === tag);
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}
