// The setup budget (SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS) and the calls-up limit,
// with backends in memory whose pace the test sets: a slow but healthy backend never
// fails a call, a dead one gets 503 + Retry-After within the budget, a CANCEL during a
// slow setup finds the call still in setup, and past SIP_SIGNALING_SERVICE_MAX_CALLS
// no backend is asked.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { headerValue, tagOf } from "../sip/mod.ts";
import type { CallBackends } from "../orchestration/call_setup.ts";
import { ConsoleEventSink } from "../orchestration/events.ts";
import { UpstreamError } from "../orchestration/grpc.ts";
import { PortPool } from "../orchestration/reference/servers.ts";
import { ActionType, type ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import { waitFor } from "./e2e/harness.ts";
import { type RequestSpec, wireCallPath } from "./helpers.ts";

const SDP =
  "v=0\r\no=c 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Backends at a pace the test sets; `undefined` delay = never answers (a dead backend). */
class PacedBackends implements CallBackends {
  readonly ports = new PortPool();
  dialplanMs: number | undefined = 0;
  mediaMs = 0;
  dialplanCalls = 0;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  resolveDialplan(_r: unknown, _t: string, deadline: number): Promise<ResolveDialplanResponse> {
    this.dialplanCalls++;
    const plan: ResolveDialplanResponse = {
      dialplanId: "dp",
      tenantId: "t",
      action: {
        action: "START_AI_CONVERSATION",
        type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
        actionData: {},
      },
    };
    return new Promise((resolve, reject) => {
      // Like a gRPC call: the deadline it is given ends it.
      const late = setTimeout(() => {
        this.#timers.delete(late);
        reject(new UpstreamError("dialplan", grpc.status.DEADLINE_EXCEEDED, "deadline"));
      }, Math.max(0, deadline - Date.now()));
      this.#timers.add(late);
      if (this.dialplanMs === undefined) return;
      const t = setTimeout(() => {
        this.#timers.delete(t);
        resolve(plan);
      }, this.dialplanMs);
      this.#timers.add(t);
    });
  }
  async allocatePort(callId: string): Promise<number> {
    const port = this.ports.allocate(callId) as number;
    await sleep(this.mediaMs);
    return port;
  }
  releasePort(rtpPort: number): Promise<boolean> {
    return Promise.resolve(this.ports.release(rtpPort));
  }
  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
  }
}

function setup(options: { setupTimeoutMs: number; maxCalls?: number }) {
  const backends = new PacedBackends();
  const events = new ConsoleEventSink();
  const { endpoint, dialogs, orchestrator, feed: feedSpec, finalFor: finalOf } = wireCallPath(
    backends,
    events,
    {
      setupTimeoutMs: options.setupTimeoutMs,
      ...(options.maxCalls === undefined ? {} : { maxCalls: options.maxCalls }),
    },
  );
  const feed = (spec: RequestSpec) => feedSpec({ body: SDP, ...spec });
  const finalFor = (callId: string, method = "INVITE") => finalOf(method, callId);
  return {
    backends,
    events,
    dialogs,
    orchestrator,
    feed,
    finalFor,
    async [Symbol.asyncDispose]() {
      dialogs.closeAll("test_end");
      await orchestrator.settle(3000);
      backends.stop();
      endpoint.transactions.close();
    },
  };
}

Deno.test({
  name: "setup budget - a slow but healthy backend (most of the budget) never fails the call",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = setup({ setupTimeoutMs: 1000 });
  s.backends.dialplanMs = 600; // over the old 300 ms per-RPC deadline, within the budget
  s.backends.mediaMs = 250; // AllocatePort gets what is left
  const started = performance.now();
  s.feed({ callId: "slow@x" });
  const answer = await waitFor(() => s.finalFor("slow@x"), 3000);
  assert.equal(answer?.status, 200, `answered after ${Math.round(performance.now() - started)} ms`);
  assert.deepEqual(s.events.published.map((e) => e.type), ["call.started"]);
});

Deno.test({
  name: "setup budget - a dead dialplan gets 503 + Retry-After within the budget; nothing published",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = setup({ setupTimeoutMs: 600 });
  s.backends.dialplanMs = undefined;
  const started = performance.now();
  s.feed({ callId: "dead@x" });
  const answer = await waitFor(() => s.finalFor("dead@x"), 3000);
  const waited = performance.now() - started;
  assert.equal(answer?.status, 503);
  assert.match(headerValue(answer?.headers ?? [], "Retry-After") ?? "", /^\d+$/);
  assert.ok(waited <= 600 + 30, `answered within the budget (${Math.round(waited)} ms)`);
  assert.ok(waited >= 400, `but not before it was nearly spent (${Math.round(waited)} ms)`);
  assert.equal(s.events.published.length, 0);
  assert.equal(s.backends.ports.allocated.size, 0);
});

Deno.test({
  name: "setup budget - media slower than what is left: 503 at the budget, the late port released",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = setup({ setupTimeoutMs: 600 });
  s.backends.dialplanMs = 400;
  s.backends.mediaMs = 700;
  const started = performance.now();
  s.feed({ callId: "late-port@x" });
  const answer = await waitFor(() => s.finalFor("late-port@x"), 3000);
  assert.equal(answer?.status, 503);
  assert.ok(performance.now() - started <= 630, "within the budget");
  assert.equal(s.backends.ports.allocated.size, 1, "the media service did allocate");
  assert.equal(await s.orchestrator.settle(3000), true);
  assert.equal(s.backends.ports.allocated.size, 0, "and the late port went back");
});

Deno.test({
  name:
    "setup budget - a CANCEL while a slow dialplan thinks finds the call in setup: 487, no port, no event",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = setup({ setupTimeoutMs: 2000 });
  s.backends.dialplanMs = 800;
  s.feed({ callId: "cancel@x" });
  await sleep(400);
  s.feed({ method: "CANCEL", callId: "cancel@x", body: "" });
  assert.equal(s.finalFor("cancel@x")?.status, 487);
  assert.equal(s.finalFor("cancel@x", "CANCEL")?.status, 200);
  await sleep(600);
  assert.equal(await s.orchestrator.settle(3000), true);
  assert.equal(s.backends.ports.allocated.size, 0);
  assert.equal(s.events.published.length, 0);
});

Deno.test({
  name: "max calls - beyond SIP_SIGNALING_SERVICE_MAX_CALLS calls up: 503 + Retry-After, no backend asked",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = setup({ setupTimeoutMs: 1000, maxCalls: 2 });
  for (const [i, id] of ["a@x", "b@x"].entries()) {
    s.feed({ callId: id, branch: `z9hG4bK-${i}` });
    const ok = await waitFor(() => s.finalFor(id));
    assert.equal(ok?.status, 200);
    s.feed({ method: "ACK", callId: id, branch: `z9hG4bK-ack-${i}`, toTag: tagOf(ok!.to), body: "" });
  }
  const asked = s.backends.dialplanCalls;
  s.feed({ callId: "c@x", branch: "z9hG4bK-c" });
  const refused = s.finalFor("c@x");
  assert.equal(refused?.status, 503);
  assert.match(headerValue(refused?.headers ?? [], "Retry-After") ?? "", /^\d+$/);
  assert.equal(s.backends.dialplanCalls, asked, "no backend asked");
  // One call ends: there is room again.
  const ok = s.finalFor("a@x")!;
  s.feed({ method: "BYE", callId: "a@x", branch: "z9hG4bK-bye", cseq: 2, toTag: tagOf(ok.to), body: "" });
  s.feed({ callId: "d@x", branch: "z9hG4bK-d" });
  assert.equal((await waitFor(() => s.finalFor("d@x")))?.status, 200);
});
