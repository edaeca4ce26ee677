/**
 * The platform's events as published (CONTRACTS.md sections 4 and 7.2): each built
 * with the generated message's proto3 JSON mapping, so a consumer decoding with the
 * `.proto` files reads exactly these fields.
 */
import {
  CallAnsweredEvent,
  CallDtmfEvent,
  CallEndedEvent,
  CallStartedEvent,
  CallTransferFailedEvent,
  CallTransferredEvent,
  type MediaInfo,
} from "../proto/gen/sentiric/event/v1/event.ts";
import type { ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";

/** An event ready to publish: routing key, JSON body, trace id. */
export interface PlatformEvent {
  readonly type:
    | "call.started"
    | "call.answered"
    | "call.ended"
    | "call.transferred"
    | "call.transfer_failed"
    | "call.dtmf";
  readonly traceId: string;
  readonly callId: string;
  readonly body: unknown;
}

export function callStarted(e: {
  traceId: string;
  callId: string;
  fromUri: string;
  toUri: string;
  dialplan: ResolveDialplanResponse;
  media: MediaInfo;
  sipHeaders: Record<string, string>;
}): PlatformEvent {
  const body = CallStartedEvent.toJSON({
    eventType: "call.started",
    traceId: e.traceId,
    callId: e.callId,
    fromUri: e.fromUri,
    toUri: e.toUri,
    timestamp: new Date(),
    dialplanResolution: e.dialplan,
    mediaInfo: e.media,
    sipHeaders: e.sipHeaders,
  });
  return { type: "call.started", traceId: e.traceId, callId: e.callId, body };
}

export function callAnswered(e: { traceId: string; callId: string }): PlatformEvent {
  const body = CallAnsweredEvent.toJSON({
    eventType: "call.answered",
    traceId: e.traceId,
    callId: e.callId,
    timestamp: new Date(),
  });
  return { type: "call.answered", traceId: e.traceId, callId: e.callId, body };
}

export function callEnded(
  e: { traceId: string; callId: string; reason: string; media: MediaInfo },
): PlatformEvent {
  const body = CallEndedEvent.toJSON({
    eventType: "call.ended",
    traceId: e.traceId,
    callId: e.callId,
    timestamp: new Date(),
    reason: e.reason,
    mediaInfo: e.media,
  });
  return { type: "call.ended", traceId: e.traceId, callId: e.callId, body };
}

export function callTransferred(e: { traceId: string; callId: string; targetUri: string }): PlatformEvent {
  const body = CallTransferredEvent.toJSON({
    eventType: "call.transferred",
    traceId: e.traceId,
    callId: e.callId,
    timestamp: new Date(),
    targetUri: e.targetUri,
  });
  return { type: "call.transferred", traceId: e.traceId, callId: e.callId, body };
}

export function callTransferFailed(
  e: { traceId: string; callId: string; targetUri: string; sipStatus: number; reason: string },
): PlatformEvent {
  const body = CallTransferFailedEvent.toJSON({
    eventType: "call.transfer_failed",
    traceId: e.traceId,
    callId: e.callId,
    timestamp: new Date(),
    targetUri: e.targetUri,
    sipStatus: e.sipStatus,
    reason: e.reason,
  });
  return { type: "call.transfer_failed", traceId: e.traceId, callId: e.callId, body };
}

export function callDtmf(
  e: { traceId: string; callId: string; digit: string; durationMs: number },
): PlatformEvent {
  const body = CallDtmfEvent.toJSON({
    eventType: "call.dtmf",
    traceId: e.traceId,
    callId: e.callId,
    timestamp: new Date(),
    digit: e.digit,
    durationMs: e.durationMs,
  });
  return { type: "call.dtmf", traceId: e.traceId, callId: e.callId, body };
}
