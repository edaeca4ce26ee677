/**
 * Why a call setup failed, and the one table from each failure to the SIP answer the
 * caller gets (CONTRACTS.md section 1: a proper SIP error, nothing published).
 */
import * as grpc from "@grpc/grpc-js";
import type { SipHeader } from "../sip/mod.ts";
import { UpstreamError } from "./grpc.ts";
import { SdpNegotiationError } from "./sdp.ts";

/** The plan says no: UNSPECIFIED action, maintenance, or an anonymous caller the route blocks. */
export class PlanRejectedError extends Error {
  override readonly name = "PlanRejectedError";
  readonly kind: "unspecified" | "maintenance" | "anonymous";
  constructor(kind: "unspecified" | "maintenance" | "anonymous") {
    super(`dialplan rejects the call: ${kind}`);
    this.kind = kind;
  }
}

/** Seconds a caller should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 30;

/** gRPC statuses that say "try again later": the caller gets 503 with Retry-After. */
const TRANSIENT: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ABORTED,
]);

/** The one table from setup failure to the SIP answer the caller gets. */
export function failureResponse(error: unknown): { status: number; headers: SipHeader[] } {
  const retryAfter = (s: number) => [{ name: "Retry-After", value: String(s) }];
  if (error instanceof UpstreamError) {
    if (error.service === "dialplan" && error.code === grpc.status.NOT_FOUND) {
      return { status: 404, headers: [] };
    }
    if (TRANSIENT.has(error.code)) return { status: 503, headers: retryAfter(RETRY_AFTER_SECONDS) };
    if (error.service === "media") return { status: 503, headers: [] };
    return { status: 500, headers: [] };
  }
  if (error instanceof SdpNegotiationError) return { status: 488, headers: [] };
  if (error instanceof OverloadError) return { status: 503, headers: retryAfter(5) };
  if (error instanceof SetupTimeoutError) return { status: 503, headers: retryAfter(RETRY_AFTER_SECONDS) };
  if (error instanceof PlanRejectedError) {
    switch (error.kind) {
      case "unspecified":
        return { status: 480, headers: [] };
      case "maintenance":
        return { status: 503, headers: retryAfter(300) };
      case "anonymous":
        return { status: 433, headers: [] }; // Anonymity Disallowed, RFC 5079.
    }
  }
  return { status: 500, headers: [] };
}

/** Too many calls in setup at once: shed load before asking any backend. */
export class OverloadError extends Error {
  override readonly name = "OverloadError";
}

/** The setup budget ran out before the backends answered. */
export class SetupTimeoutError extends Error {
  override readonly name = "SetupTimeoutError";
}
