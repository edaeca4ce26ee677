// The orchestrator with real gRPC to the reference backends, over an in-memory SIP
// transport: late offer (SDP in the ACK), a carrier's second INVITE during setup,
// CANCEL during setup. Events go to the in-memory sink.
import assert from "node:assert/strict";
import { headerValue, type SipResponse, tagOf } from "../sip/mod.ts";
import { ConsoleEventSink } from "../orchestration/events.ts";
import { Upstreams } from "../orchestration/grpc.ts";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import { waitFor } from "./e2e/harness.ts";
import { wireCallPath } from "./helpers.ts";

const CALLER_SDP =
  "v=0\r\no=c 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

/** The stdout sink with a settable backlog, as an AMQP outbox has in a broker outage. */
class BackloggedSink extends ConsoleEventSink {
  backlog = 0;
  override get pending(): number {
    return this.backlog;
  }
}

async function setup(
  deadlineMs = 1000,
  maxCallsInSetup = 500,
  maxEventsPending = 10_000,
  setupTimeoutMs?: number,
) {
  const backends = await startReferenceServers();
  const upstreams = new Upstreams({
    dialplanUrl: backends.dialplanUrl,
    mediaUrl: backends.mediaUrl,
    userUrl: backends.userUrl,
    deadlineMs,
  });
  const events = new BackloggedSink();
  const { wire, endpoint, dialogs, orchestrator, feed, finalFor } = wireCallPath(upstreams, events, {
    maxCallsInSetup,
    maxEventsPending,
    setupTimeoutMs: setupTimeoutMs ?? deadlineMs,
  });
  return {
    backends,
    events,
    wire,
    dialogs,
    orchestrator,
    feed,
    finalFor,
    async [Symbol.asyncDispose]() {
      dialogs.closeAll("test_end");
      await endpoint.close();
      upstreams.close();
      await backends.close();
    },
  };
}

Deno.test({
  name: "call flow - INVITE without SDP: our offer in the 200, call.started once the ACK answers",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup();
  s.feed({ body: "" });
  const ok = await waitFor(() => s.finalFor("INVITE"));
  assert.ok(ok !== undefined && ok.status === 200);
  assert.match(new TextDecoder().decode(ok.body), /m=audio 1\d{4} RTP\/AVP 0 8 101/);
  assert.equal(s.events.published.length, 0, "nothing before the caller's answer");
  s.feed({ method: "ACK", toTag: tagOf(ok.to), body: CALLER_SDP.replace("6000", "6200") });
  const types = s.events.published.map((e) => e.type);
  assert.deepEqual(types, ["call.started", "call.answered"]);
  const media = (s.events.published[0]?.body as { mediaInfo: { callerRtpAddr: string } }).mediaInfo;
  assert.equal(media.callerRtpAddr, "192.0.2.10:6200", "caller address from the ACK's answer");
});

Deno.test({
  name: "call flow - a second INVITE (new branch) during setup: 482, one orchestration, one call.started",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(3000);
  // 905550000408 answers after 2 s: the resend arrives while the first is being set up.
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP });
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP, branch: "z9hG4bK-resent" });
  assert.equal(s.wire.lastResponse().status, 482);
  const ok = await waitFor(
    () => s.wire.sent.some((x) => x.message.kind === "response" && x.message.status === 200),
    5000,
  );
  assert.ok(ok);
  assert.deepEqual(s.events.published.map((e) => e.type), ["call.started"]);
  assert.equal(s.backends.traceIds.filter((t) => t.method === "ResolveDialplan").length, 1);
  assert.equal(s.backends.ports.allocated.size, 1);
});

Deno.test({
  name: "call flow - CANCEL during setup: 487, no 200, no event, no port left",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(3000);
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP });
  s.feed({ method: "CANCEL", uri: "sip:905550000408@127.0.0.1", body: "" });
  assert.equal(s.finalFor("INVITE")?.status, 487);
  await new Promise((r) => setTimeout(r, 2500)); // the slow dialplan answers meanwhile
  assert.equal(
    s.wire.sent.filter((x) =>
      x.message.kind === "response" && x.message.status === 200 && x.message.cseq.method === "INVITE"
    ).length,
    0,
  );
  assert.equal(s.events.published.length, 0);
  assert.equal(s.backends.ports.allocated.size, 0);
  assert.equal(headerValue(s.finalFor("CANCEL")?.headers ?? [], "CSeq"), "1 CANCEL");
});

Deno.test({
  name: "call flow - a flood beyond the setup limit is shed with 503 before any backend call",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(3000, 1);
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP, callId: "first@x" });
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP, callId: "second@x", branch: "z9hG4bK-2" });
  const shed = s.wire.lastResponse();
  assert.equal(shed.status, 503);
  assert.equal(shed.callId, "second@x");
  assert.equal(headerValue(shed.headers, "Retry-After"), "5");
  assert.equal(s.backends.traceIds.filter((t) => t.method === "ResolveDialplan").length <= 1, true);
  await waitFor(
    () => s.wire.sent.some((x) => x.message.kind === "response" && x.message.status === 200),
    5000,
  );
  s.feed({ body: CALLER_SDP, callId: "third@x", branch: "z9hG4bK-3" });
  await waitFor(() => s.events.published.length === 2, 3000);
  assert.deepEqual(
    s.events.published.map((e) => e.callId),
    ["first@x", "third@x"],
    "accepted again once setup drained",
  );
});

Deno.test({
  name: "call flow - shutdown: 503 for calls in setup and new calls, BYE for calls up, every port released",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(3000);
  s.feed({ body: CALLER_SDP, callId: "up@x", branch: "z9hG4bK-up" });
  const ok = await waitFor(() => s.finalFor("INVITE"));
  assert.equal(ok?.status, 200);
  s.feed({
    method: "ACK",
    callId: "up@x",
    branch: "z9hG4bK-ack",
    toTag: tagOf(ok?.to ?? { uri: "", params: [] }),
  });
  // 905550000408 answers after 2 s: this one is still in setup when the shutdown starts.
  s.feed({ uri: "sip:905550000408@127.0.0.1", body: CALLER_SDP, callId: "setup@x", branch: "z9hG4bK-s" });
  await waitFor(() =>
    s.backends.traceIds.some((t) => t.method === "ResolveDialplan" && s.orchestrator.callsInSetup === 1)
  );

  s.orchestrator.stopAccepting();
  s.dialogs.closeAll("terminated_by_request");
  const responses = () =>
    s.wire.sent.map((x) => x.message).filter((m): m is SipResponse => m.kind === "response");
  const inSetup = responses().find((m) => m.callId === "setup@x" && m.status >= 200);
  assert.equal(inSetup?.status, 503, "the call in setup is refused");
  assert.equal(headerValue(inSetup?.headers ?? [], "Retry-After"), "5");
  assert.ok(
    s.wire.sent.some((x) =>
      x.message.kind === "request" && x.message.method === "BYE" && x.message.callId === "up@x"
    ),
    "the call that is up gets our BYE",
  );
  s.feed({ body: CALLER_SDP, callId: "late@x", branch: "z9hG4bK-late" });
  assert.equal(
    responses().find((m) => m.callId === "late@x" && m.status >= 200)?.status,
    503,
    "new calls too",
  );

  assert.equal(await s.orchestrator.settle(5000), true, "setups and releases finish");
  assert.deepEqual(
    s.events.published.map((e) => `${e.type} ${e.callId}`),
    ["call.started up@x", "call.answered up@x", "call.ended up@x"],
    "nothing for the refused calls",
  );
  assert.equal(s.backends.ports.allocated.size, 0, "every port released");
});

Deno.test({
  name: "call flow - while events pile up for the bus, new calls get 503 before any backend call",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(1000, 500, 100);
  s.events.backlog = 100; // the broker is away and 100 events wait
  s.feed({ body: CALLER_SDP, callId: "during@x", branch: "z9hG4bK-d" });
  const refused = s.finalFor("INVITE");
  assert.equal(refused?.status, 503);
  assert.equal(headerValue(refused?.headers ?? [], "Retry-After"), "5");
  assert.equal(s.backends.traceIds.length, 0, "no backend asked");
  assert.equal(s.orchestrator.counters.callsShed, 1);

  s.events.backlog = 3; // the broker is back and the outbox drains
  s.feed({ body: CALLER_SDP, callId: "after@x", branch: "z9hG4bK-a" });
  const ok = await waitFor(() =>
    s.wire.sent.map((x) => x.message).find((m) =>
      m.kind === "response" && m.callId === "after@x" && m.status >= 200
    )
  );
  assert.equal(ok?.kind === "response" ? ok.status : 0, 200, "calls are taken again");
});

Deno.test({
  name: "call flow - AllocatePort past the setup deadline: 503 at the deadline, the late port released",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using s = await setup(1000, 500, 10_000, 300);
  s.backends.mediaDelayMs = 800; // allocates at once, answers 800 ms later
  const started = performance.now();
  s.feed({ body: CALLER_SDP, callId: "slow-media@x" });
  const refused = await waitFor(() => s.finalFor("INVITE"), 3000);
  const waited = performance.now() - started;
  assert.equal(refused?.status, 503);
  assert.match(headerValue(refused?.headers ?? [], "Retry-After") ?? "", /^\d+$/);
  assert.ok(
    waited < 700,
    `the caller is answered at the setup deadline, not the media service's pace (${waited} ms)`,
  );
  assert.equal(s.backends.ports.allocated.size, 1, "the media service did allocate a port");
  assert.equal(await s.orchestrator.settle(3000), true);
  assert.equal(s.backends.ports.allocated.size, 0, "and it was released once its number arrived");
  assert.equal(s.events.published.length, 0, "the agent never hears of the call");
});
