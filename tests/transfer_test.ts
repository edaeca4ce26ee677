// Blind transfer (orchestration/transfer.ts, CONTRACTS.md 7.1) on a dialog session on
// fake time: the REFER we send, the NOTIFYs we answer, the events and the call's end.
import assert from "node:assert/strict";
import {
  type CallController,
  type Dialog,
  DialogManager,
  FakeClock,
  headerValue,
  SipEndpoint,
  type SipRequest,
  type SipResponse,
  tagOf,
  UasCore,
} from "../sip/mod.ts";
import type { EventPublisher, PlatformEvent } from "../orchestration/events.ts";
import {
  BYE_AFTER_TRANSFER_MS,
  CallTransfers,
  FINAL_NOTIFY_TIMEOUT_MS,
  sipfragStatus,
  type Transferable,
} from "../orchestration/transfer.ts";
import { CALLER, MemoryTransport, requestBytes, type RequestSpec } from "./helpers.ts";

const T = { t1: 10, t2: 40, t4: 50 };
const SDP =
  "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
const TARGET = "sip:human-queue@pbx.example";

function publisher(): EventPublisher & { published: PlatformEvent[] } {
  const published: PlatformEvent[] = [];
  return {
    published,
    publish: (e) => published.push(e),
    pending: 0,
    confirmedByType: new Map(),
    connected: true,
    lastError: undefined,
    drain: () => Promise.resolve(true),
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

interface Rec extends Transferable {
  ended?: string;
}

function setup() {
  const clock = new FakeClock();
  const wire = new MemoryTransport();
  const endpoint = new SipEndpoint(wire, { clock, timers: T });
  const dialogs = new DialogManager<Rec>(endpoint, {
    contactHost: "203.0.113.5",
    contactPort: 5060,
    sessionExpires: 1800,
    minSE: 90,
    allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "NOTIFY"],
    serverName: "test",
  });
  const events = publisher();
  const transfers = new CallTransfers(events);
  const ended: string[] = [];
  const controller: CallController<Rec> = {
    onIncomingCall: (call) =>
      call.accept(new TextEncoder().encode("v=0\r\n"), { traceId: "t1", transfer: undefined }),
    onAnswered: () => {},
    onEnded: (dialog, reason) => ended.push(transfers.endReason(dialog, reason)),
    answerReoffer: () => undefined,
    onCancelled: () => {},
    onInDialogRequest: (dialog, request) =>
      request.method === "NOTIFY" ? transfers.notify(dialog, request) : undefined,
  };
  dialogs.setController(controller);
  endpoint.transactions.setUser(
    new UasCore(endpoint.transactions, dialogs, {
      allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "NOTIFY"],
      supported: ["timer"],
      accept: ["application/sdp"],
      serverName: "test",
    }),
  );
  const feed = (spec: RequestSpec) => endpoint.receive(requestBytes(spec), CALLER);
  feed({ body: SDP });
  const ok = wire.sent.map((s) => s.message).find((m): m is SipResponse =>
    m.kind === "response" && m.status === 200
  );
  const toTag = ok === undefined ? "" : tagOf(ok.to) ?? "";
  feed({ method: "ACK", toTag, body: "" });
  const dialog = dialogs.findByCallId(ok?.callId ?? "") as Dialog<Rec>;
  const sent = (method: string) =>
    wire.sent.map((s) => s.message).filter((m): m is SipRequest =>
      m.kind === "request" && m.method === method
    );
  /** The far side answers our request `request` with `status`. */
  const answer = (request: SipRequest, status: number) => {
    const lines = [
      `SIP/2.0 ${status} X`,
      ...request.headers.filter((h) => /^(Via|From|To|Call-ID|CSeq)$/i.test(h.name)).map((h) =>
        `${h.name}: ${h.value}`
      ),
      "Content-Length: 0",
      "",
      "",
    ];
    endpoint.receive(new TextEncoder().encode(lines.join("\r\n")), CALLER);
  };
  let cseq = 10;
  /** The far side's NOTIFY with a sipfrag; returns our answer's status. */
  const notify = (frag: string, state = "active;expires=60", event = "refer") => {
    feed({
      method: "NOTIFY",
      toTag,
      cseq: ++cseq,
      branch: `z9hG4bK-n${cseq}`,
      extra: [`Event: ${event}`, `Subscription-State: ${state}`, "Content-Type: message/sipfrag;version=2.0"],
      body: frag,
    });
    return s_last(wire);
  };
  return { clock, wire, dialog, events, transfers, ended, sent, answer, notify, feed, toTag };
}

function s_last(wire: MemoryTransport): number {
  return wire.lastResponse().status;
}

Deno.test("transfer - REFER in the dialog with Refer-To and Referred-By; 202 -> success; final 2xx NOTIFY ends the call as transferred", async () => {
  const s = setup();
  const answered = s.transfers.start(s.dialog, TARGET, "to a human");
  const [refer] = s.sent("REFER");
  assert.ok(refer !== undefined, "REFER sent");
  assert.equal(headerValue(refer.headers, "Refer-To"), `<${TARGET}>`);
  assert.match(headerValue(refer.headers, "Referred-By") ?? "", /^<sip:/);
  assert.equal(refer.callId, s.dialog.callId);
  assert.equal(tagOf(refer.from), s.toTag, "our tag as From");
  s.answer(refer, 202);
  assert.deepEqual(await answered, { success: true, message: "REFER accepted (202)", sipStatus: 202 });
  assert.equal(s.notify("SIP/2.0 100 Trying\r\n"), 200);
  assert.deepEqual(s.events.published.map((e) => e.type), []);
  assert.equal(s.notify("SIP/2.0 200 OK\r\n", "terminated;reason=noresource"), 200);
  assert.deepEqual(s.events.published.map((e) => e.type), ["call.transferred"]);
  assert.equal((s.events.published[0]?.body as { targetUri: string }).targetUri, TARGET);
  // The far side has not hung up within 5 s: we do.
  s.clock.advance(BYE_AFTER_TRANSFER_MS - 1);
  assert.equal(s.sent("BYE").length, 0);
  s.clock.advance(1);
  assert.equal(s.sent("BYE").length, 1);
  assert.deepEqual(s.ended, ["transferred"]);
});

Deno.test("transfer - the far side's BYE after a successful transfer: the call ends as transferred, no BYE of ours", async () => {
  const s = setup();
  const answered = s.transfers.start(s.dialog, TARGET, "");
  s.answer(s.sent("REFER")[0]!, 202);
  await answered;
  s.notify("SIP/2.0 200 OK\r\n", "terminated");
  s.feed({ method: "BYE", toTag: s.toTag, cseq: 50, branch: "z9hG4bK-bye", body: "" });
  assert.equal(s.wire.lastResponse().status, 200);
  s.clock.advance(BYE_AFTER_TRANSFER_MS);
  assert.equal(s.sent("BYE").length, 0);
  assert.deepEqual(s.ended, ["transferred"]);
});

Deno.test("transfer - REFER refused (603): the call stays up, call.transfer_failed with the status", async () => {
  const s = setup();
  const answered = s.transfers.start(s.dialog, TARGET, "");
  s.answer(s.sent("REFER")[0]!, 603);
  assert.deepEqual(await answered, { success: false, message: "REFER refused (603)", sipStatus: 603 });
  assert.deepEqual(s.events.published.map((e) => e.type), ["call.transfer_failed"]);
  assert.equal((s.events.published[0]?.body as { sipStatus: number }).sipStatus, 603);
  assert.equal(s.dialog.state, "confirmed");
  // Another transfer may start.
  const again = s.transfers.start(s.dialog, TARGET, "");
  assert.equal(s.sent("REFER").length, 2);
  s.answer(s.sent("REFER")[1]!, 202);
  assert.equal((await again).success, true);
});

Deno.test("transfer - a final non-2xx sipfrag, or no final NOTIFY within 30 s: failed, the call stays", async () => {
  const s = setup();
  let answered = s.transfers.start(s.dialog, TARGET, "");
  s.answer(s.sent("REFER")[0]!, 202);
  await answered;
  s.notify("SIP/2.0 486 Busy Here\r\n", "terminated");
  const failed = s.events.published.filter((e) => e.type === "call.transfer_failed");
  assert.equal((failed[0]?.body as { sipStatus: number }).sipStatus, 486);
  answered = s.transfers.start(s.dialog, TARGET, "");
  s.answer(s.sent("REFER")[1]!, 202);
  await answered;
  s.notify("SIP/2.0 180 Ringing\r\n");
  s.clock.advance(FINAL_NOTIFY_TIMEOUT_MS);
  assert.equal(s.events.published.filter((e) => e.type === "call.transfer_failed").length, 2);
  assert.equal(s.dialog.state, "confirmed");
  assert.deepEqual(s.ended, []);
});

Deno.test("transfer - one at a time per call; NOTIFY for another event gets 489, with no transfer 481", async () => {
  const s = setup();
  assert.equal(s.notify("SIP/2.0 200 OK\r\n"), 481, "no transfer under way");
  const first = s.transfers.start(s.dialog, TARGET, "");
  const second = await s.transfers.start(s.dialog, "sip:other@pbx.example", "");
  assert.equal(second.success, false);
  assert.match(second.message, /in progress/);
  assert.equal(s.sent("REFER").length, 1);
  assert.equal(s.notify("SIP/2.0 200 OK\r\n", "active", "presence"), 489);
  s.answer(s.sent("REFER")[0]!, 202);
  await first;
  const bad = await s.transfers.start(s.dialog, "not a uri", "");
  assert.equal(bad.success, false);
});

Deno.test("transfer - no answer to REFER (Timer F): the RPC says so with sip_status 0", async () => {
  const s = setup();
  const answered = s.transfers.start(s.dialog, TARGET, "");
  s.clock.advance(64 * T.t1);
  assert.deepEqual(await answered, { success: false, message: "no answer to REFER", sipStatus: 0 });
  assert.deepEqual(s.events.published.map((e) => e.type), ["call.transfer_failed"]);
});

Deno.test("transfer - sipfrag status lines", () => {
  const enc = (t: string) => new TextEncoder().encode(t);
  assert.equal(sipfragStatus(enc("SIP/2.0 200 OK\r\n")), 200);
  assert.equal(sipfragStatus(enc("SIP/2.0 100 Trying")), 100);
  assert.equal(sipfragStatus(enc("SIP/2.0 603 Declined\r\nContent-Length: 0\r\n")), 603);
  assert.equal(sipfragStatus(enc("INVITE sip:x SIP/2.0")), undefined);
  assert.equal(sipfragStatus(enc("")), undefined);
});
