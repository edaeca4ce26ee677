// Trace ids (CONTRACTS.md 7.4), phone-number masking, and readiness verdicts with
// their grace periods, on fake inputs.
import assert from "node:assert/strict";
import { parseMessage, type SipRequest } from "../sip/mod.ts";
import { traceIdOf, traceparentFor } from "../orchestration/trace.ts";
import { maskPhoneNumbers } from "../orchestration/logging.ts";
import { Readiness } from "../orchestration/readiness.ts";
import type { ChannelState } from "../orchestration/grpc.ts";
import { requestBytes } from "./helpers.ts";

const invite = (extra: string[]) => parseMessage(requestBytes({ extra })) as SipRequest;

Deno.test("trace id - X-Trace-Id, else traceparent's trace id, else a new W3C one", () => {
  assert.equal(traceIdOf(invite(["X-Trace-Id: gw-123"])), "gw-123");
  const parent = "4bf92f3577b34da6a3ce929d0e0e4736";
  assert.equal(traceIdOf(invite([`traceparent: 00-${parent}-00f067aa0ba902b7-01`])), parent);
  assert.equal(
    traceIdOf(invite(["X-Trace-Id: gw-9", `traceparent: 00-${parent}-00f067aa0ba902b7-01`])),
    "gw-9",
    "X-Trace-Id wins",
  );
  for (const bad of ["X-Trace-Id: has space", `X-Trace-Id: ${"a".repeat(200)}`, "traceparent: 00-zz-00-01"]) {
    assert.match(traceIdOf(invite([bad])), /^[0-9a-f]{32}$/, `${bad}: ignored, a new one`);
  }
  assert.match(
    traceIdOf(invite([`traceparent: 00-${"0".repeat(32)}-00f067aa0ba902b7-01`])),
    /^[0-9a-f]{32}$/,
  );
  assert.notEqual(traceIdOf(invite([])), traceIdOf(invite([])), "new ones differ");
});

Deno.test("trace id - traceparent on our gRPC calls keeps a W3C trace id and names a new span", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const [v, trace, span, flags] = traceparentFor(id).split("-");
  assert.deepEqual([v, trace, flags], ["00", id, "01"]);
  assert.match(span ?? "", /^[0-9a-f]{16}$/);
  assert.notEqual(traceparentFor(id), traceparentFor(id), "a new span id each call");
  const derived = traceparentFor("gw-123").split("-")[1];
  assert.match(derived ?? "", /^[0-9a-f]{32}$/);
  assert.equal(traceparentFor("gw-123").split("-")[1], derived, "stable for one gateway trace id");
});

Deno.test("logging - phone numbers keep only their last 4 digits above debug", () => {
  assert.equal(maskPhoneNumbers("905551112233"), "********2233");
  assert.equal(
    maskPhoneNumbers("no route for 905551112233 from +905321234567"),
    "no route for ********2233 from +********4567",
  );
  assert.equal(maskPhoneNumbers("port 10042, status 503"), "port 10042, status 503", "short numbers stay");
});

Deno.test("readiness - channels and the broker count as down only past their grace; a refused login at once", async () => {
  const state = { sip: true, dialplan: "READY" as ChannelState, accepting: true };
  const events: { connected: boolean; lastError: string | undefined } = {
    connected: true,
    lastError: undefined,
  };
  const r = new Readiness({
    sipBound: () => state.sip,
    channels: () => ({ dialplan: state.dialplan, media: "READY" }),
    events,
    accepting: () => state.accepting,
    channelGraceMs: 50,
    brokerGraceMs: 50,
  });
  state.dialplan = "IDLE";
  assert.equal(r.evaluate().status, "ready", "an IDLE channel gets the grace to connect on the probe");
  state.dialplan = "TRANSIENT_FAILURE";
  assert.equal(r.evaluate().status, "ready", "a backend restart is ridden out");
  await new Promise((res) => setTimeout(res, 30));
  state.dialplan = "CONNECTING";
  assert.equal(r.evaluate().status, "ready", "still within the grace");
  await new Promise((res) => setTimeout(res, 30));
  state.dialplan = "TRANSIENT_FAILURE";
  const down = r.evaluate();
  assert.equal(down.status, "not_ready");
  assert.deepEqual(down.checks.dialplan, { ok: false, state: "TRANSIENT_FAILURE" });
  assert.equal(r.ready, false);
  state.dialplan = "READY";
  assert.equal(r.evaluate().status, "ready", "back at once when it is");
  events.connected = false;
  events.lastError = "access_refused";
  assert.deepEqual(r.evaluate().checks.broker, { ok: false, state: "access_refused" });
  events.connected = true;
  events.lastError = undefined;
  state.accepting = false;
  assert.deepEqual(r.evaluate().checks.draining, { ok: false, state: "yes" });
});

Deno.test("metrics - call.ended reasons from TerminateCall are bounded as label values", async () => {
  const { reasonLabel } = await import("../orchestration/metrics.ts");
  const seen = new Map<string, number>();
  assert.equal(reasonLabel("completed_by_agent", seen), "completed_by_agent");
  assert.equal(reasonLabel("Customer said: bye \u0007", seen), "other", "free text is not a label");
  for (let i = 0; i < 40; i++) seen.set(`reason_${i}`, 1);
  assert.equal(reasonLabel("reason_3", seen), "reason_3", "a value already seen stays");
  assert.equal(reasonLabel("a_new_one", seen), "other", "no new values past the bound");
});

Deno.test("logging - the stdout event sink's lines mask numbers in number fields, not trace ids", async () => {
  const { maskNumbersIn } = await import("../orchestration/events.ts");
  const body = {
    traceId: "a1234567890bcdef1234567890abcdef",
    fromUri: "sip:905321234567@192.0.2.1",
    toUri: "sip:905551112233@127.0.0.1",
    dialplanResolution: {
      matchedContact: { contactValue: "905321234567" },
      inboundRoute: { phoneNumber: "905551112233" },
    },
    mediaInfo: { serverRtpPort: 10042 },
  };
  assert.deepEqual(maskNumbersIn(body), {
    ...body,
    fromUri: "sip:********4567@192.0.2.1",
    toUri: "sip:********2233@127.0.0.1",
    dialplanResolution: {
      matchedContact: { contactValue: "********4567" },
      inboundRoute: { phoneNumber: "********2233" },
    },
  });
});
