/**
 * What call setup works with, apart from the orchestrator itself: the backends it
 * calls, what it keeps per call, its options and counters, and the pure helpers that
 * read numbers out of an INVITE.
 */
import { parseUri, type SipRequest } from "../sip/mod.ts";
import type { ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import type { TransferState } from "./transfer.ts";

/**
 * What call setup needs from the other services: in production the gRPC clients
 * (`Upstreams`); failures come back as `UpstreamError`, for the failure table.
 */
export interface CallBackends {
  /** `deadline`: epoch milliseconds by which the answer must be in (what is left of the setup budget). */
  resolveDialplan(
    request: { callerContactValue: string; destinationNumber: string },
    traceId: string,
    deadline: number,
  ): Promise<ResolveDialplanResponse>;
  /** Runs with room of its own: call setup stops waiting at its budget and releases a late port. */
  allocatePort(callId: string, traceId: string): Promise<number>;
  releasePort(rtpPort: number, traceId: string): Promise<boolean>;
}

/**
 * E.164 digits without "+" (CONTRACTS.md section 5): "+", "00" prefixes dropped;
 * a national 0XXXXXXXXXX or 10-digit number gets the default country code.
 */
export function normalizeNumber(raw: string, countryCode: string): string {
  let digits = decodeURIComponent(raw).replace(/[\s().-]/g, "");
  if (digits.startsWith("+")) return digits.slice(1);
  if (!/^\d+$/.test(digits)) return digits;
  if (digits.startsWith("00")) return digits.slice(2);
  if (digits.startsWith("0") && digits.length === 11) digits = countryCode + digits.slice(1);
  else if (digits.length === 10) digits = countryCode + digits;
  return digits;
}

export function userPart(uri: string): string {
  try {
    return parseUri(uri).user ?? "";
  } catch {
    const m = /^tel:([^;]+)/i.exec(uri);
    return m?.[1] ?? "";
  }
}

export function isAnonymous(request: SipRequest): boolean {
  const user = userPart(request.from.uri).toLowerCase();
  return user === "" || user === "anonymous" || /anonymous\.invalid/i.test(request.from.uri);
}

/** What the orchestrator keeps per call (on `dialog.data`). */
export interface CallRecord {
  readonly traceId: string;
  readonly rtpPort: number;
  callerRtpAddr: string;
  /** Until `call.started` carries it; then dropped (a few hundred bytes per call up). */
  dialplan: ResolveDialplanResponse | undefined;
  /** INVITE had no SDP: our offer went in the 200, the answer comes in the ACK. */
  readonly lateOffer: boolean;
  started: boolean;
  sdpVersion: number;
  /** The INVITE's headers named by SIP_SIGNALING_SERVICE_FORWARD_HEADERS, until `call.started` carries them. */
  sipHeaders: Record<string, string>;
  /** A transfer under way or done (transfer.ts). */
  transfer: TransferState | undefined;
}

export interface OrchestratorOptions {
  readonly publicIp: string;
  readonly defaultCountryCode: string;
  /** Calls allowed in setup at once; more get 503 with Retry-After without any backend call. Default 500. */
  readonly maxCallsInSetup?: number;
  /** Calls up and in setup at once; more get 503 with Retry-After without any backend call. Default 100000. */
  readonly maxCalls?: number;
  /**
   * The caller's longest wait from INVITE to a final answer (default 2000 ms).
   * ResolveDialplan and AllocatePort share it, each getting what is left; when it runs
   * out the caller gets 503 with Retry-After, whatever is still pending. AllocatePort
   * itself may run on, so that a port allocated late is known and released.
   */
  readonly setupTimeoutMs?: number;
  /** False while the instance is not ready (readiness.ts): new calls get 503 at once. */
  readonly ready?: () => boolean;
  /**
   * Events allowed to wait for the bus; beyond it new calls get 503 with Retry-After
   * (the agent could not hear of them). Calls already up go on, and their events are
   * kept. Default 10000.
   */
  readonly maxEventsPending?: number;
  /** INVITE headers copied into `call.started` (SIP_SIGNALING_SERVICE_FORWARD_HEADERS). Default `X-*`. */
  readonly forwardHeaders?: string;
}

/** Answer this much before the budget ends, so the caller has its answer within it. */
export const BUDGET_MARGIN_MS = 20;

export interface OrchestratorCounters {
  callsOffered: number;
  callsAnswered: number;
  callsRejected: number;
  callsShed: number;
  callsEnded: number;
  portReleaseFailures: number;
}
