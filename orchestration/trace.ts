/**
 * One call, one trace id (CONTRACTS.md 7.4): the gateway's `X-Trace-Id` when it sends
 * one, else the trace id of a W3C `traceparent`, else a new one. It goes into every
 * log line and event of the call, and on every gRPC call as `x-trace-id` and as a
 * `traceparent` naming a new span of ours.
 */
import {
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import { headerValue, type SipRequest } from "../sip/mod.ts";
import { VERSION } from "./version.ts";

/**
 * Spans, through Deno's built-in OpenTelemetry (`OTEL_DENO=true`, exported over OTLP);
 * without it the API is a no-op. One call is one trace: `sip.call.setup` with the gRPC
 * calls and the `call.started` publish as its children.
 */
export const tracer = trace.getTracer("sip-signaling", VERSION);

/** What we accept from the wire as a trace id: printable, no spaces, at most 128 characters. */
const TRACE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** W3C Trace Context: version-traceid-parentid-flags (https://www.w3.org/TR/trace-context/). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Random bytes drawn 4 KiB at a time: one `getRandomValues` per 256 trace ids, not one each. */
const pool = new Uint8Array(4096);
let poolUsed = pool.length;

/** `bytes` random bytes as hex (a trace id is 16, a span id 8); on the path of every call. */
function randomHex(bytes: number): string {
  if (poolUsed + bytes > pool.length) {
    crypto.getRandomValues(pool);
    poolUsed = 0;
  }
  let out = "";
  for (let i = 0; i < bytes; i++) out += HEX[pool[poolUsed++] as number];
  return out;
}

/** The trace id of a call from its INVITE. */
export function traceIdOf(invite: SipRequest): string {
  const given = headerValue(invite.headers, "X-Trace-Id")?.trim();
  if (given !== undefined && TRACE_ID.test(given)) return given;
  const parent = TRACEPARENT.exec(headerValue(invite.headers, "traceparent")?.trim().toLowerCase() ?? "");
  const traceId = parent?.[2];
  if (parent !== null && traceId !== undefined && parent[1] !== "ff" && !/^0+$/.test(traceId)) return traceId;
  return randomHex(16); // the W3C form, so that it is also a valid traceparent trace id
}

/**
 * A `traceparent` for a call we make: the span it runs in when one is recording, else
 * the call's trace id when it is a W3C one (32 hex digits), else a trace id derived
 * from it, and a new span id.
 */
export function traceparentFor(traceId: string, span?: Span): string {
  const own = span?.spanContext();
  if (own !== undefined && trace.isSpanContextValid(own) && span?.isRecording()) {
    return `00-${own.traceId}-${own.spanId}-01`;
  }
  return `00-${w3cTraceId(traceId)}-${randomHex(8)}-01`;
}

/**
 * The context a call's spans start from: the gateway's `traceparent` when it sent one
 * for this trace, else a remote parent that carries the call's trace id, so that the
 * OpenTelemetry trace id is the one in the logs and events.
 */
export function callTraceContext(traceId: string, invite: SipRequest): Context {
  const parent = TRACEPARENT.exec(headerValue(invite.headers, "traceparent")?.trim().toLowerCase() ?? "");
  const spanId = parent !== null && parent[2] === traceId ? parent[3] as string : randomHex(8);
  return trace.setSpanContext(context.active(), {
    traceId: w3cTraceId(traceId),
    spanId,
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** Runs `work` in a new active span `name`; the span records a thrown error and always ends. */
export function inSpan<T>(
  name: string,
  attributes: Record<string, string | number>,
  work: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes, kind: SpanKind.INTERNAL }, parent, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** A client span for a call to another service, child of the active span. */
export function startClientSpan(name: string, attributes: Record<string, string>): Span {
  return tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, context.active());
}

/** 32 hex digits from any trace id (a UUID loses its dashes; anything else is hashed the cheap way). */
function w3cTraceId(traceId: string): string {
  const hex = traceId.toLowerCase().replaceAll("-", "");
  if (/^[0-9a-f]{32}$/.test(hex)) return hex;
  // FNV-1a over the text, four times with different seeds: stable for one trace id.
  let out = "";
  for (let seed = 0; seed < 4; seed++) {
    let h = 0x811c9dc5 ^ seed;
    for (let i = 0; i < traceId.length; i++) h = Math.imul(h ^ traceId.charCodeAt(i), 0x01000193);
    out += (h >>> 0).toString(16).padStart(8, "0");
  }
  return /^0+$/.test(out) ? "1".padStart(32, "0") : out;
}
