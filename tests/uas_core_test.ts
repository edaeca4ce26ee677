// The answers the stack gives on its own (RFC 3261 sections 8.2, 9.2, 11) and the
// endpoint's handling of bad input and response routing (18.2.2, RFC 3581).
import assert from "node:assert/strict";
import {
  FakeClock,
  headerValue,
  type ServerInviteTransaction,
  SipEndpoint,
  type SipRequest,
  tagOf,
  UasCore,
} from "../sip/mod.ts";
import { CALLER, MemoryTransport, requestBytes } from "./helpers.ts";

function setup() {
  const wire = new MemoryTransport();
  const endpoint = new SipEndpoint(wire, { clock: new FakeClock(), timers: { t1: 10, t2: 40, t4: 50 } });
  const passed: SipRequest[] = [];
  const cancelled: ServerInviteTransaction[] = [];
  const core = new UasCore(endpoint.transactions, {
    onRequest: (request, tx) => {
      passed.push(request);
      if (tx.kind === "server-invite") tx.onCancelled(() => cancelled.push(tx));
    },
    onAck: () => {},
  }, {
    allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"],
    supported: ["timer"],
    accept: ["application/sdp"],
    serverName: "test",
  });
  endpoint.transactions.setUser(core);
  const feed = (spec: Parameters<typeof requestBytes>[0] = {}) =>
    endpoint.receive(requestBytes(spec), CALLER);
  return { wire, endpoint, passed, cancelled, feed };
}

Deno.test("uas core - OPTIONS outside a dialog gets 200 with Allow, Accept, Supported and a To-tag", () => {
  const s = setup();
  s.feed({ method: "OPTIONS" });
  const r = s.wire.lastResponse();
  assert.equal(r.status, 200);
  assert.equal(headerValue(r.headers, "Allow"), "INVITE, ACK, CANCEL, BYE, OPTIONS");
  assert.equal(headerValue(r.headers, "Accept"), "application/sdp");
  assert.equal(headerValue(r.headers, "Supported"), "timer");
  assert.ok(tagOf(r.to) !== undefined);
  assert.equal(s.passed.length, 0);
});

Deno.test("uas core - unknown method gets 501, a known one not served gets 405, both with Allow", () => {
  const s = setup();
  s.feed({ method: "FROBNICATE" });
  assert.equal(s.wire.lastResponse().status, 501);
  s.feed({ method: "REGISTER", branch: "z9hG4bK-reg" });
  const r = s.wire.lastResponse();
  assert.equal(r.status, 405);
  assert.equal(headerValue(r.headers, "Allow"), "INVITE, ACK, CANCEL, BYE, OPTIONS");
});

Deno.test("uas core - Require with an unsupported extension gets 420 listing it in Unsupported", () => {
  const s = setup();
  s.feed({ extra: ["Require: timer, 100rel, foo"] });
  const r = s.wire.lastResponse();
  assert.equal(r.status, 420);
  assert.equal(headerValue(r.headers, "Unsupported"), "100rel, foo");
  s.feed({ extra: ["Require: timer"], branch: "z9hG4bK-2" });
  assert.equal(s.passed.length, 1, "a supported Require passes");
});

Deno.test("uas core - Max-Forwards 0 gets 483", () => {
  const s = setup();
  s.endpoint.receive(
    new TextEncoder().encode(
      new TextDecoder().decode(requestBytes()).replace("Max-Forwards: 70", "Max-Forwards: 0"),
    ),
    CALLER,
  );
  assert.equal(s.wire.lastResponse().status, 483);
  assert.equal(s.passed.length, 0);
});

Deno.test("uas core - CANCEL: 481 matching nothing; else 200, the INVITE's 487, the app told once", () => {
  const s = setup();
  s.feed({ method: "CANCEL", branch: "z9hG4bK-none" });
  assert.equal(s.wire.lastResponse().status, 481);
  s.feed({ branch: "z9hG4bK-inv" });
  s.wire.clear();
  s.feed({ method: "CANCEL", branch: "z9hG4bK-inv" });
  assert.deepEqual(
    s.wire.sent.map((m) =>
      m.message.kind === "response" ? `${m.message.status} ${m.message.cseq.method}` : ""
    ),
    ["200 CANCEL", "487 INVITE"],
  );
  assert.equal(s.cancelled.length, 1);
  assert.equal(s.cancelled[0]?.request.method, "INVITE");
  // The CANCEL resent: its 200 again, nothing more for the INVITE or the app.
  s.wire.clear();
  s.feed({ method: "CANCEL", branch: "z9hG4bK-inv" });
  assert.deepEqual(s.wire.statuses(), [200]);
  assert.equal(s.cancelled.length, 1);
});

Deno.test("endpoint - a broken mandatory header gets 400 naming it, sent to received/rport", () => {
  const s = setup();
  const bad = new TextDecoder().decode(requestBytes()).replace("CSeq: 1 INVITE", "CSeq: one INVITE");
  s.endpoint.receive(new TextEncoder().encode(bad), { hostname: "127.0.0.9", port: 40000 });
  const [sent] = s.wire.raw;
  assert.ok(sent !== undefined);
  assert.equal(sent.frame.startLine, "SIP/2.0 400 Bad CSeq Header");
  assert.deepEqual(sent.destination, { hostname: "127.0.0.9", port: 40000 });
  assert.match(headerValue(sent.frame.headers, "Via") ?? "", /received=127\.0\.0\.9;rport=40000/);
  assert.equal(headerValue(sent.frame.headers, "CSeq"), "one INVITE", "copied as received");
  assert.equal(s.endpoint.counters.parseErrors, 1);
});

Deno.test("endpoint - a missing Call-ID gets 400 'Missing Call-ID Header'", () => {
  const s = setup();
  const bad = new TextDecoder().decode(requestBytes()).replace(/Call-ID: .*\r\n/, "");
  s.endpoint.receive(new TextEncoder().encode(bad), CALLER);
  assert.equal(s.wire.raw[0]?.frame.startLine, "SIP/2.0 400 Missing Call-ID Header");
});

Deno.test("endpoint - another SIP version gets 505", () => {
  const s = setup();
  const bad = new TextDecoder().decode(requestBytes()).replace(" SIP/2.0\r\n", " SIP/3.0\r\n");
  s.endpoint.receive(new TextEncoder().encode(bad), CALLER);
  const r = s.wire.sent[0]?.message;
  assert.ok(r?.kind === "response");
  assert.equal(r.status, 505);
});

Deno.test("endpoint - garbage and unroutable requests are counted and dropped, keep-alives ignored", () => {
  const s = setup();
  s.endpoint.receive(new Uint8Array([1, 2, 3, 0xff]), CALLER);
  s.endpoint.receive(new TextEncoder().encode("INVITE sip:a@b SIP/2.0\r\nVia: nonsense\r\n\r\n"), CALLER);
  s.endpoint.receive(new TextEncoder().encode("\r\n\r\n"), CALLER);
  assert.equal(s.wire.sent.length, 0);
  assert.equal(s.endpoint.counters.parseErrors, 2);
  assert.equal(s.endpoint.counters.keepAlives, 1);
});

Deno.test("endpoint - responses go to the sent-by when no rport was asked and the source matches", () => {
  const s = setup();
  s.endpoint.receive(
    requestBytes({ method: "OPTIONS", via: "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-o" }),
    { hostname: "192.0.2.10", port: 33333 },
  );
  assert.deepEqual(s.wire.sent[0]?.destination, { hostname: "192.0.2.10", port: 5070 });
  s.endpoint.receive(
    requestBytes({ method: "OPTIONS", via: "SIP/2.0/UDP gw.example;branch=z9hG4bK-p" }),
    { hostname: "192.0.2.11", port: 33333 },
  );
  assert.deepEqual(
    s.wire.sent[1]?.destination,
    { hostname: "192.0.2.11", port: 5060 },
    "received, default port",
  );
  s.endpoint.receive(
    requestBytes({ method: "OPTIONS", via: "SIP/2.0/UDP gw.example;branch=z9hG4bK-q;maddr=192.0.2.99" }),
    { hostname: "192.0.2.11", port: 33333 },
  );
  assert.deepEqual(s.wire.sent[2]?.destination, { hostname: "192.0.2.99", port: 5060 }, "maddr wins");
});

Deno.test("endpoint - a flood of garbage is counted in full but logged at a limited rate", async () => {
  const { configure, reset } = await import("@logtape/logtape");
  const records: unknown[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
      { category: ["sip"], sinks: ["memory"], lowestLevel: "debug" },
    ],
  });
  try {
    const wire = new MemoryTransport();
    const endpoint = new SipEndpoint(wire, { clock: new FakeClock(), parseErrorLogsPerSecond: 3 });
    for (let i = 0; i < 50; i++) endpoint.receive(new TextEncoder().encode(`garbage ${i}\r\n\r\n`), CALLER);
    assert.equal(endpoint.counters.parseErrors, 50);
    assert.equal(records.length, 3, "three log lines in the first second, the rest counted");
    assert.equal(wire.raw.length, 0, "nothing answered");
  } finally {
    await reset();
  }
});
