// RFC 3261 section 17 state machines on fake time: each test feeds inputs (requests,
// responses, timer firings, transport errors) and checks state and output after each.
import assert from "node:assert/strict";
import {
  buildResponse,
  FakeClock,
  parseMessage,
  type ServerInviteTransaction,
  type ServerNonInviteTransaction,
  type ServerTransaction,
  SipEndpoint,
  type SipRequest,
  type TerminationReason,
  TransactionTimeoutError,
  TransportError,
} from "../sip/mod.ts";
import { CALLER, MemoryTransport, requestBytes } from "./helpers.ts";

const T = { t1: 10, t2: 40, t4: 50 };

function setup() {
  const clock = new FakeClock();
  const wire = new MemoryTransport();
  const endpoint = new SipEndpoint(wire, { clock, timers: T });
  const seen: { request: SipRequest; tx: ServerTransaction }[] = [];
  const acks: SipRequest[] = [];
  endpoint.transactions.setUser({
    onRequest: (request, tx) => seen.push({ request, tx }),
    onAck: (ack) => acks.push(ack),
  });
  const feed = (spec: Parameters<typeof requestBytes>[0] = {}) =>
    endpoint.receive(requestBytes(spec), CALLER);
  return { clock, wire, endpoint, seen, acks, feed };
}

function invite(s: ReturnType<typeof setup>): ServerInviteTransaction {
  const tx = s.seen.at(-1)?.tx;
  assert.equal(tx?.kind, "server-invite");
  return tx as ServerInviteTransaction;
}

Deno.test("server INVITE - non-2xx: Timer G doubles to T2, ACK confirms, Timer I ends it", () => {
  const s = setup();
  s.feed();
  const tx = invite(s);
  let ended: TerminationReason | undefined;
  tx.onTerminated((r) => (ended = r));
  tx.respond(buildResponse(tx.request, 486, { toTag: "uas" }));
  assert.equal(tx.state, "completed");
  assert.deepEqual(tx.armedTimers, ["G", "H"]);
  assert.deepEqual(s.wire.statuses(), [486]);
  // G fires at T1, then 2T1, 4T1, then every T2 (10, 20, 40, 40 ms).
  const times: number[] = [];
  for (let t = 1; t <= 110; t++) {
    const before = s.wire.sent.length;
    s.clock.advance(1);
    if (s.wire.sent.length > before) times.push(t);
  }
  assert.deepEqual(times, [10, 30, 70, 110]);
  s.feed({ method: "ACK", toTag: "uas" });
  assert.equal(tx.state, "confirmed");
  assert.deepEqual(tx.armedTimers, ["I"]);
  assert.equal(s.acks.length, 0, "ACK for a non-2xx is absorbed");
  s.feed({ method: "ACK", toTag: "uas" });
  assert.equal(s.acks.length, 0);
  s.clock.advance(T.t4);
  assert.equal(tx.state, "terminated");
  assert.equal(ended, "normal");
  assert.deepEqual(s.endpoint.transactions.size, { server: 0, client: 0 });
  assert.equal(s.clock.pending, 0);
});

Deno.test("server INVITE - Timer H ends a completed transaction without ACK as a timeout", () => {
  const s = setup();
  s.feed();
  const tx = invite(s);
  let ended: TerminationReason | undefined;
  tx.onTerminated((r) => (ended = r));
  tx.respond(buildResponse(tx.request, 503, { toTag: "uas" }));
  s.clock.advance(64 * T.t1 - 1);
  assert.equal(tx.state, "completed");
  s.clock.advance(1);
  assert.equal(tx.state, "terminated");
  assert.equal(ended, "timeout");
  assert.equal(s.clock.pending, 0);
});

Deno.test("server INVITE - a retransmitted INVITE re-sends the last response and reaches the TU once", () => {
  const s = setup();
  s.feed();
  const tx = invite(s);
  tx.respond(buildResponse(tx.request, 100));
  s.feed();
  s.feed();
  assert.equal(s.seen.length, 1);
  assert.deepEqual(s.wire.statuses(), [100, 100, 100]);
  tx.respond(buildResponse(tx.request, 404, { toTag: "uas" }));
  s.feed();
  assert.deepEqual(s.wire.statuses(), [100, 100, 100, 404, 404]);
  assert.equal(s.seen.length, 1);
});

Deno.test("server INVITE - 2xx: Accepted absorbs INVITE retransmissions, passes ACK up, Timer L ends it", () => {
  const s = setup();
  s.feed();
  const tx = invite(s);
  const ok = buildResponse(tx.request, 200, { toTag: "uas" });
  tx.respond(ok);
  assert.equal(tx.state, "accepted");
  assert.deepEqual(tx.armedTimers, ["L"]);
  assert.deepEqual(tx.request.headers, [], "answered: only what names the INVITE is kept");
  assert.equal(tx.request.callId, ok.callId);
  s.feed();
  assert.deepEqual(s.wire.statuses(), [200], "no automatic re-send in Accepted (RFC 6026)");
  assert.equal(s.seen.length, 1);
  tx.respond(ok); // the TU sends the 2xx it built again
  assert.deepEqual(s.wire.statuses(), [200, 200], "the TU's 2xx retransmission goes out");
  s.feed({ method: "ACK", toTag: "uas" });
  assert.equal(s.acks.length, 1);
  assert.equal(tx.state, "accepted");
  s.clock.advance(64 * T.t1);
  assert.equal(tx.state, "terminated");
});

Deno.test("server INVITE - a transport error terminates the transaction", async () => {
  const s = setup();
  s.feed();
  const tx = invite(s);
  let ended: TerminationReason | undefined;
  tx.onTerminated((r) => (ended = r));
  s.wire.failSends = true;
  tx.respond(buildResponse(tx.request, 486, { toTag: "uas" }));
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(tx.state, "terminated");
  assert.equal(ended, "transport-error");
  assert.equal(s.clock.pending, 0);
});

Deno.test("server non-INVITE - trying absorbs, completed re-sends the final, Timer J ends it", () => {
  const s = setup();
  s.feed({ method: "BYE", toTag: "uas", branch: "z9hG4bK-bye" });
  const tx = s.seen[0]?.tx as ServerNonInviteTransaction;
  assert.equal(tx.kind, "server-non-invite");
  assert.equal(tx.state, "trying");
  s.feed({ method: "BYE", toTag: "uas", branch: "z9hG4bK-bye" });
  assert.deepEqual(s.wire.statuses(), [], "nothing to re-send in trying");
  tx.respond(buildResponse(tx.request, 200));
  assert.equal(tx.state, "completed");
  s.feed({ method: "BYE", toTag: "uas", branch: "z9hG4bK-bye" });
  assert.deepEqual(s.wire.statuses(), [200, 200]);
  assert.equal(s.seen.length, 1);
  s.clock.advance(64 * T.t1);
  assert.equal(tx.state, "terminated");
  assert.equal(s.clock.pending, 0);
});

Deno.test("server non-INVITE - a provisional moves to proceeding and is re-sent on retransmission", () => {
  const s = setup();
  s.feed({ method: "INFO", toTag: "uas", branch: "z9hG4bK-info" });
  const tx = s.seen[0]?.tx as ServerNonInviteTransaction;
  tx.respond(buildResponse(tx.request, 100));
  assert.equal(tx.state, "proceeding");
  s.feed({ method: "INFO", toTag: "uas", branch: "z9hG4bK-info" });
  assert.deepEqual(s.wire.statuses(), [100, 100]);
});

Deno.test("RFC 2543 fallback - requests without the magic cookie still match their transaction", () => {
  const s = setup();
  const old = { via: "SIP/2.0/UDP 192.0.2.10:5070", callId: "old-2543" };
  s.feed(old);
  s.feed(old);
  assert.equal(s.seen.length, 1, "retransmission matched");
  const tx = invite(s);
  tx.respond(buildResponse(tx.request, 480, { toTag: "uas" }));
  s.feed({ ...old, method: "ACK", toTag: "uas" });
  assert.equal(tx.state, "confirmed");
  s.feed({ ...old, cseq: 2 });
  assert.equal(s.seen.length, 2, "a new CSeq is a new transaction");
});

function bye(s: ReturnType<typeof setup>) {
  const request = parseMessage(
    requestBytes({ method: "BYE", branch: "z9hG4bK-out", toTag: "t" }),
  ) as SipRequest;
  return s.endpoint.transactions.sendRequest(request, CALLER);
}

function respondTo(s: ReturnType<typeof setup>, request: SipRequest, status: number): void {
  const response = buildResponse(request, status);
  s.endpoint.receive(
    new TextEncoder().encode(
      `SIP/2.0 ${status} X\r\n${response.headers.map((h) => `${h.name}: ${h.value}`).join("\r\n")}\r\n\r\n`,
    ),
    CALLER,
  );
}

Deno.test("client non-INVITE - Timer E doubles to T2, then stays at T2 once proceeding", () => {
  const s = setup();
  const tx = bye(s);
  const times: number[] = [];
  const tick = (n: number) => {
    for (let i = 0; i < n; i++) {
      const before = s.wire.sent.length;
      s.clock.advance(1);
      if (s.wire.sent.length > before) times.push(s.clock.now());
    }
  };
  tick(70);
  assert.deepEqual(times, [10, 30, 70], "E at T1, 2T1, 4T1");
  respondTo(s, tx.request, 100);
  assert.equal(tx.state, "proceeding");
  times.length = 0;
  tick(80);
  assert.deepEqual(times, [110, 150], "every T2 in proceeding");
  assert.equal(s.wire.sent.length, 6, "the first send plus five retransmissions");
});

Deno.test("client non-INVITE - final response resolves, Timer K ends it, late responses absorbed", async () => {
  const s = setup();
  const tx = bye(s);
  respondTo(s, tx.request, 200);
  assert.equal((await tx.response).status, 200);
  assert.equal(tx.state, "completed");
  assert.deepEqual(tx.armedTimers, ["K"]);
  respondTo(s, tx.request, 200);
  assert.equal(s.endpoint.counters.strayResponses, 0, "retransmitted 200 absorbed by the transaction");
  s.clock.advance(T.t4);
  assert.equal(tx.state, "terminated");
  respondTo(s, tx.request, 200);
  assert.equal(s.endpoint.counters.strayResponses, 1);
});

Deno.test("client non-INVITE - Timer F rejects with a timeout", async () => {
  const s = setup();
  const tx = bye(s);
  s.clock.advance(64 * T.t1);
  await assert.rejects(tx.response, TransactionTimeoutError);
  assert.equal(tx.state, "terminated");
  assert.equal(s.clock.pending, 0);
});

Deno.test("client non-INVITE - a transport error rejects and terminates", async () => {
  const s = setup();
  s.wire.failSends = true;
  const tx = bye(s);
  await assert.rejects(tx.response, TransportError);
  assert.equal(tx.state, "terminated");
  assert.equal(s.clock.pending, 0);
});

// Over a stream (section 17.1.1.2, 17.2.1, 17.2.2): nothing is resent by a timer, and
// timers I, J and K, which only absorb retransmissions, are zero.
const OVER_TCP = { ...CALLER, transport: "TCP" as const, connection: 7 };

function setupTcp() {
  const clock = new FakeClock();
  const udp = new MemoryTransport();
  const tcp = new MemoryTransport("TCP");
  const endpoint = new SipEndpoint([udp, tcp], { clock, timers: T });
  const seen: ServerTransaction[] = [];
  endpoint.transactions.setUser({ onRequest: (_r, tx) => seen.push(tx), onAck: () => {} });
  const feed = (spec: Parameters<typeof requestBytes>[0] = {}) =>
    endpoint.receive(requestBytes(spec), OVER_TCP);
  return { clock, udp, tcp, endpoint, seen, feed };
}

Deno.test("over TCP - a non-2xx is not resent (no Timer G), H still runs, ACK ends it at once (I = 0)", () => {
  const s = setupTcp();
  s.feed();
  const tx = s.seen[0] as ServerInviteTransaction;
  tx.respond(buildResponse(tx.request, 486, { toTag: "uas" }));
  assert.deepEqual(tx.armedTimers, ["H"]);
  s.clock.advance(30 * T.t1);
  assert.deepEqual(s.tcp.statuses(), [486], "sent once, on TCP");
  assert.equal(s.tcp.sent[0]?.destination.connection, 7, "on the request's connection");
  assert.equal(s.udp.sent.length, 0);
  s.feed({ method: "ACK", toTag: "uas" });
  s.clock.advance(0);
  assert.equal(tx.state, "terminated");
});

Deno.test("over TCP - a non-INVITE final response ends its transaction at once (J = 0)", () => {
  const s = setupTcp();
  s.feed({ method: "OPTIONS" });
  const tx = s.seen[0] as ServerNonInviteTransaction;
  tx.respond(buildResponse(tx.request, 200, { toTag: "uas" }));
  s.clock.advance(0);
  assert.equal(tx.state, "terminated");
});

Deno.test("over TCP - a BYE we send is not resent (no Timer E); F still times it out; K = 0", async () => {
  const s = setupTcp();
  const request = parseMessage(
    requestBytes({ method: "BYE", branch: "z9hG4bK-tcp", toTag: "t" }),
  ) as SipRequest;
  const tx = s.endpoint.transactions.sendRequest(request, OVER_TCP);
  assert.deepEqual(tx.armedTimers, ["F"]);
  s.clock.advance(64 * T.t1 - 1);
  assert.equal(s.tcp.sent.length, 1, "sent once");
  s.clock.advance(1);
  await assert.rejects(tx.response, TransactionTimeoutError);
  const again = s.endpoint.transactions.sendRequest(
    parseMessage(requestBytes({ method: "BYE", branch: "z9hG4bK-tcp2", toTag: "t" })) as SipRequest,
    OVER_TCP,
  );
  const response = buildResponse(again.request, 200);
  s.endpoint.receive(
    new TextEncoder().encode(
      `SIP/2.0 200 OK\r\n${response.headers.map((h) => `${h.name}: ${h.value}`).join("\r\n")}\r\n\r\n`,
    ),
    OVER_TCP,
  );
  assert.equal((await again.response).status, 200);
  s.clock.advance(0);
  assert.equal(again.state, "terminated");
});
