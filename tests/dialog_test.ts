// Dialog layer (RFC 3261 sections 12-15, RFC 4028) on fake time with an in-memory
// transport: what is sent after each input, and what the controller hears.
import assert from "node:assert/strict";
import {
  FakeClock,
  headerValue,
  headerValues,
  SipEndpoint,
  type SipRequest,
  type SipResponse,
  tagOf,
  UasCore,
} from "../sip/mod.ts";
import { type CallController, type Dialog, DialogManager, type IncomingCall } from "../sip/dialog.ts";
import { CALLER, MemoryTransport, requestBytes, type RequestSpec } from "./helpers.ts";

const T = { t1: 10, t2: 40, t4: 50 };
const SDP =
  "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
const ANSWER = new TextEncoder().encode("v=0\r\ns=answer\r\n");

function setup(options: { autoAccept?: boolean } = {}) {
  const clock = new FakeClock();
  const wire = new MemoryTransport();
  const endpoint = new SipEndpoint(wire, { clock, timers: T });
  const dialogs = new DialogManager(endpoint, {
    contactHost: "203.0.113.5",
    contactPort: 5060,
    sessionExpires: 1800,
    minSE: 90,
    allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"],
    serverName: "test",
  });
  const heard = {
    incoming: [] as IncomingCall[],
    answered: [] as Dialog[],
    ended: [] as { dialog: Dialog; reason: string }[],
    reoffers: 0,
    cancelled: 0,
  };
  const controller: CallController = {
    onIncomingCall(call) {
      heard.incoming.push(call);
      if (options.autoAccept ?? true) call.accept(ANSWER);
    },
    onAnswered: (dialog) => heard.answered.push(dialog),
    onEnded: (dialog, reason) => heard.ended.push({ dialog, reason }),
    answerReoffer: () => {
      heard.reoffers++;
      return ANSWER;
    },
    onCancelled: () => heard.cancelled++,
  };
  dialogs.setController(controller);
  endpoint.transactions.setUser(
    new UasCore(endpoint.transactions, dialogs, {
      allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"],
      supported: ["timer"],
      accept: ["application/sdp"],
      serverName: "test",
    }),
  );
  const feed = (spec: RequestSpec = {}) => endpoint.receive(requestBytes({ body: SDP, ...spec }), CALLER);
  const invite = (spec: RequestSpec = {}) => {
    feed(spec);
    const ok = wire.sent.map((s) => s.message).find((m): m is SipResponse =>
      m.kind === "response" && m.status === 200 && m.cseq.method === "INVITE"
    );
    return { ok, toTag: ok === undefined ? undefined : tagOf(ok.to) };
  };
  const sentRequests = (method: string) =>
    wire.sent.filter((s) => s.message.kind === "request" && s.message.method === method);
  return { clock, wire, endpoint, dialogs, heard, feed, invite, sentRequests };
}

Deno.test("dialog - 100 Trying at once, then 200 with To-tag, Contact, SDP; retransmitted T1..T2 until ACK", () => {
  const s = setup();
  const { ok, toTag } = s.invite();
  assert.deepEqual(s.wire.statuses(), [100, 200]);
  assert.ok(ok !== undefined && toTag !== undefined);
  assert.equal(headerValue(ok.headers, "Contact"), "<sip:203.0.113.5:5060>");
  assert.equal(headerValue(ok.headers, "Content-Type"), "application/sdp");
  assert.deepEqual([...ok.body], [...ANSWER]);
  const times: number[] = [];
  for (let t = 1; t <= 110; t++) {
    const before = s.wire.sent.length;
    s.clock.advance(1);
    if (s.wire.sent.length > before) times.push(t);
  }
  assert.deepEqual(times, [10, 30, 70, 110], "13.3.1.4: T1, then doubling, capped at T2");
  s.feed({ method: "ACK", toTag, body: "" });
  assert.equal(s.heard.answered.length, 1);
  s.clock.advance(1000);
  assert.equal(s.wire.statuses().filter((x) => x === 200).length, 5, "no more 200s after the ACK");
  s.feed({ method: "ACK", toTag, body: "" });
  assert.equal(s.heard.answered.length, 1, "answered once per call");
});

Deno.test("dialog - no ACK within 64*T1: BYE to the remote target and the call ends with ack_timeout", () => {
  const s = setup();
  s.invite();
  s.clock.advance(64 * T.t1);
  const [bye] = s.sentRequests("BYE");
  assert.ok(bye !== undefined && bye.message.kind === "request");
  assert.equal(
    bye.message.uri,
    "sip:905321234567@192.0.2.10:5070",
    "remote target from the INVITE's Contact",
  );
  assert.deepEqual(bye.destination, { hostname: "192.0.2.10", port: 5070 });
  assert.deepEqual(s.heard.ended.map((e) => e.reason), ["ack_timeout"]);
  assert.equal(s.dialogs.size.calls, 0);
});

Deno.test("dialog - BYE ends the call with normal_clearing; later requests get 481", () => {
  const s = setup();
  const { toTag } = s.invite();
  s.feed({ method: "ACK", toTag, body: "" });
  s.feed({ method: "BYE", toTag, cseq: 2, branch: "z9hG4bK-bye", body: "" });
  assert.equal(s.wire.lastResponse().status, 200);
  assert.equal(s.wire.lastResponse().cseq.method, "BYE");
  assert.deepEqual(s.heard.ended.map((e) => e.reason), ["normal_clearing"]);
  s.feed({ method: "INFO", toTag, cseq: 3, branch: "z9hG4bK-info", body: "" });
  assert.equal(s.wire.lastResponse().status, 481);
  s.feed({ method: "BYE", branch: "z9hG4bK-nodialog", body: "" });
  assert.equal(s.wire.lastResponse().status, 481, "out-of-dialog BYE");
  assert.equal(s.clock.pending > 0, true, "only transaction timers remain");
  s.clock.advance(64 * T.t1);
  assert.equal(s.clock.pending, 0, "every timer released");
});

Deno.test("dialog - in-dialog OPTIONS and INFO get 200", () => {
  const s = setup();
  const { toTag } = s.invite();
  s.feed({ method: "ACK", toTag, body: "" });
  s.feed({ method: "OPTIONS", toTag, cseq: 2, branch: "z9hG4bK-o", body: "" });
  assert.equal(s.wire.lastResponse().status, 200);
  s.feed({
    method: "INFO",
    toTag,
    cseq: 3,
    branch: "z9hG4bK-i",
    body: "",
    extra: ["Content-Type: application/dtmf-relay"],
  });
  assert.equal(s.wire.lastResponse().status, 200);
  assert.equal(tagOf(s.wire.lastResponse().to), toTag);
});

Deno.test("dialog - re-INVITE (hold) gets 200 with an answer, never a second call", () => {
  const s = setup();
  const { toTag } = s.invite();
  s.feed({ method: "ACK", toTag, body: "" });
  s.feed({ toTag, cseq: 2, branch: "z9hG4bK-reinvite", body: SDP + "a=sendonly\r\n" });
  const ok = s.wire.lastResponse();
  assert.equal(ok.status, 200);
  assert.equal(ok.cseq.seq, 2);
  assert.equal(s.heard.incoming.length, 1, "no second orchestration");
  assert.equal(s.heard.reoffers, 1);
  s.feed({ method: "ACK", toTag, cseq: 2, branch: "z9hG4bK-ack2", body: "" });
  const count = s.wire.sent.length;
  s.clock.advance(200);
  assert.equal(s.wire.sent.length, count, "ACK stopped the re-INVITE's 2xx retransmission");
  assert.equal(s.heard.answered.length, 1, "call.answered only for the first ACK");
});

Deno.test("dialog - a second INVITE for a Call-ID in progress (new branch) gets 482, no second call", () => {
  const s = setup({ autoAccept: false });
  s.feed();
  s.feed({ branch: "z9hG4bK-carrier-resend" });
  assert.equal(s.wire.lastResponse().status, 482);
  assert.equal(s.heard.incoming.length, 1);
  s.heard.incoming[0]?.accept(ANSWER);
  s.feed({ branch: "z9hG4bK-after-answer" });
  assert.equal(s.wire.lastResponse().status, 482);
  assert.equal(s.heard.incoming.length, 1);
});

Deno.test("dialog - Session-Expires below Min-SE gets 422 with Min-SE", () => {
  const s = setup();
  s.feed({ extra: ["Session-Expires: 60"] });
  const r = s.wire.lastResponse();
  assert.equal(r.status, 422);
  assert.equal(headerValue(r.headers, "Min-SE"), "90");
  assert.equal(s.heard.incoming.length, 0);
});

Deno.test("dialog - session timer: refresher uac, no refresh -> BYE and session_expired; a refresh resets it", () => {
  const s = setup();
  const { ok, toTag } = s.invite({ extra: ["Supported: timer", "Session-Expires: 120;refresher=uac"] });
  assert.equal(headerValue(ok?.headers ?? [], "Session-Expires"), "120;refresher=uac");
  assert.equal(headerValue(ok?.headers ?? [], "Require"), "timer");
  s.feed({ method: "ACK", toTag, body: "" });
  // Expiry at interval - min(32, interval/3) = 88 s; refresh at 60 s with UPDATE.
  s.clock.advance(60_000);
  s.feed({
    method: "UPDATE",
    toTag,
    cseq: 2,
    branch: "z9hG4bK-refresh",
    body: "",
    extra: ["Session-Expires: 120;refresher=uac"],
  });
  assert.equal(s.wire.lastResponse().status, 200);
  assert.equal(headerValue(s.wire.lastResponse().headers, "Session-Expires"), "120;refresher=uac");
  s.clock.advance(87_000);
  assert.equal(s.heard.ended.length, 0, "the refresh moved the expiry");
  s.clock.advance(2_000);
  assert.deepEqual(s.heard.ended.map((e) => e.reason), ["session_expired"]);
  const branches = new Set(s.sentRequests("BYE").map((b) => b.message.via[0]?.params[0]?.value));
  assert.equal(branches.size, 1, "one BYE transaction (retransmitted until answered)");
});

Deno.test("dialog - a caller that supports timers but names no interval gets ours, refresher uac", () => {
  const s = setup();
  const { ok } = s.invite({ extra: ["Supported: timer"] });
  assert.equal(headerValue(ok?.headers ?? [], "Session-Expires"), "1800;refresher=uac");
});

Deno.test("dialog - refresher uas: we refresh with UPDATE at half the interval", () => {
  const s = setup();
  const { toTag } = s.invite({ extra: ["Session-Expires: 100;refresher=uas"] });
  s.feed({ method: "ACK", toTag, body: "" });
  s.clock.advance(50_000);
  const [update] = s.sentRequests("UPDATE");
  assert.ok(update !== undefined && update.message.kind === "request");
  assert.equal(headerValue(update.message.headers, "Session-Expires"), "100;refresher=uas");
  assert.equal(tagOf(update.message.from), toTag, "our tag is the From of our requests");
});

Deno.test("dialog - CANCEL during setup: 200 to CANCEL, 487 to the INVITE, accept afterwards does nothing", () => {
  const s = setup({ autoAccept: false });
  s.feed();
  s.feed({ method: "CANCEL", body: "" });
  assert.deepEqual(s.wire.statuses(), [100, 200, 487]);
  assert.equal(s.heard.cancelled, 1);
  assert.equal(s.heard.incoming[0]?.accept(ANSWER), undefined);
  assert.deepEqual(s.wire.statuses(), [100, 200, 487]);
});

Deno.test("dialog - our BYE honours the route set from Record-Route", () => {
  const s = setup();
  const { ok, toTag } = s.invite({
    extra: ["Record-Route: <sip:192.0.2.50:5080;lr>, <sip:192.0.2.51;lr>"],
  });
  assert.deepEqual(headerValues(ok?.headers ?? [], "Record-Route"), [
    "<sip:192.0.2.50:5080;lr>",
    "<sip:192.0.2.51;lr>",
  ]);
  s.feed({ method: "ACK", toTag, body: "" });
  const dialog = s.dialogs.findByCallId("call-1@192.0.2.10");
  assert.ok(dialog !== undefined);
  s.dialogs.terminate(dialog, "terminated_by_request");
  const [bye] = s.sentRequests("BYE");
  assert.ok(bye !== undefined && bye.message.kind === "request");
  const request = bye.message as SipRequest;
  assert.deepEqual(headerValues(request.headers, "Route"), [
    "<sip:192.0.2.50:5080;lr>",
    "<sip:192.0.2.51;lr>",
  ]);
  assert.equal(request.uri, "sip:905321234567@192.0.2.10:5070");
  assert.deepEqual(bye.destination, { hostname: "192.0.2.50", port: 5080 }, "loose routing: first Route");
  assert.deepEqual(s.heard.ended.map((e) => e.reason), ["terminated_by_request"]);
  // The BYE is retransmitted (Timer E) until answered.
  s.clock.advance(T.t1);
  assert.equal(s.sentRequests("BYE").length, 2);
  const copied = request.headers.filter((h) => ["Via", "From", "To", "Call-ID", "CSeq"].includes(h.name));
  const response = `SIP/2.0 200 OK\r\n${copied.map((h) => `${h.name}: ${h.value}`).join("\r\n")}\r\n\r\n`;
  s.endpoint.receive(new TextEncoder().encode(response), CALLER);
  s.clock.advance(1000);
  assert.equal(s.sentRequests("BYE").length, 2, "answered: no more retransmissions");
});
