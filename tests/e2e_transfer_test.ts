// End to end (CONTRACTS.md 7.1, 7.2): the agent hands the caller to a human with
// TransferCall; SIPp plays the far side that accepts (202, NOTIFYs, BYE) or refuses
// (603); key presses arrive as SIP INFO; X- headers and P-Asserted-Identity reach the
// agent. Events are decoded with the .proto definitions.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  CallDtmfEvent,
  CallEndedEvent,
  CallStartedEvent,
  CallTransferFailedEvent,
  CallTransferredEvent,
} from "../proto/gen/sentiric/event/v1/event.ts";
import {
  backendsEnv,
  e2eTest,
  EventConsumer,
  missingPeers,
  scenarioFrom,
  scenarioPath,
  sipp,
  startService,
  terminateCall,
  transferCall,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const TARGET = "sip:human-queue@pbx.example";

e2eTest("e2e - transfer, DTMF by INFO, caller context", skip, async (t) => {
  await using backends = await startReferenceServers();
  await using consumer = await EventConsumer.start();
  await using service = await startService(backendsEnv(backends));

  /** Starts `scenario` and returns its Call-ID once the call is answered. */
  const callUp = async (scenario: string) => {
    const before = consumer.events.length;
    const caller = sipp(scenarioPath(scenario), service.sipPort, ["-s", "905551112233", "-trace_msg"]);
    const answered = await waitFor(() =>
      consumer.events.slice(before).find((e) => e.routingKey === "call.answered")
    );
    assert.ok(answered, "call answered");
    return { callId: String(answered.body.callId), caller };
  };

  await t.step(
    "the far side accepts: 202, NOTIFY 200, its BYE; call.transferred, call.ended transferred",
    async () => {
      const { callId, caller } = await callUp("uac_transfer.xml");
      const answer = await transferCall(service.grpcPort, callId, TARGET, "caller asked for a human");
      assert.deepEqual(answer, { success: true, message: "REFER accepted (202)", sipStatus: 202 });
      const r = await caller;
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.log, new RegExp(`refer_to=${TARGET}`));
      assert.match(r.messages, /REFER sip:905321234567@127\.0\.0\.1:\d+ SIP\/2\.0[\s\S]*?Referred-By: <sip:/);
      const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
      assert.equal(CallEndedEvent.fromJSON(ended?.body).reason, "transferred");
      const types = consumer.forCall(callId).map((e) => e.routingKey);
      assert.deepEqual(types, ["call.started", "call.answered", "call.transferred", "call.ended"]);
      const transferred = CallTransferredEvent.fromJSON(consumer.forCall(callId)[2]?.body);
      assert.equal(transferred.targetUri, TARGET);
      assert.equal(transferred.eventType, "call.transferred");
      assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "port released");
    },
  );

  await t.step(
    "the far side refuses (603): the call stays with the agent, call.transfer_failed",
    async () => {
      const { callId, caller } = await callUp("uac_transfer_refused.xml");
      const answer = await transferCall(service.grpcPort, callId, TARGET);
      assert.deepEqual(answer, { success: false, message: "REFER refused (603)", sipStatus: 603 });
      const failed = await waitFor(() =>
        consumer.forCall(callId).find((e) => e.routingKey === "call.transfer_failed")
      );
      const event = CallTransferFailedEvent.fromJSON(failed?.body);
      assert.equal(event.sipStatus, 603);
      assert.equal(event.targetUri, TARGET);
      assert.equal(consumer.forCall(callId).some((e) => e.routingKey === "call.ended"), false, "still up");
      const unknown = await transferCall(service.grpcPort, "no-such-call", TARGET);
      assert.equal(unknown.success, false);
      assert.equal(unknown.sipStatus, 0);
      assert.match(unknown.message, /no-such-call/);
      assert.equal((await terminateCall(service.grpcPort, callId, "completed_by_agent")).success, true);
      assert.equal((await caller).code, 0);
    },
  );

  await t.step("key presses by INFO: 200 each, call.dtmf in order", async () => {
    const before = consumer.events.length;
    const r = await sipp(scenarioPath("uac_info_dtmf.xml"), service.sipPort, ["-s", "905551112233"]);
    assert.equal(r.code, 0, r.stdout);
    await waitFor(() => consumer.events.slice(before).some((e) => e.routingKey === "call.ended"));
    const presses = consumer.events.slice(before).filter((e) => e.routingKey === "call.dtmf")
      .map((e) => CallDtmfEvent.fromJSON(e.body));
    assert.deepEqual(presses.map((p) => [p.digit, p.durationMs]), [["1", 160], ["#", 200], ["7", 0]]);
    assert.equal(new Set(presses.map((p) => p.traceId)).size, 1);
  });

  await t.step("X- headers reach call.started; P-Asserted-Identity names the caller", async () => {
    const before = consumer.events.length;
    const scenario = await scenarioFrom("uac_call_headers.xml", {
      HEADERS:
        "X-Customer-Id: 42\n      X-Campaign: spring\n      P-Asserted-Identity: <sip:905321234567@carrier.example>",
    });
    // From is anonymous: only P-Asserted-Identity says who calls.
    await Deno.writeTextFile(
      scenario,
      (await Deno.readTextFile(scenario)).replaceAll(
        '"Caller" <sip:905321234567@',
        '"Anonymous" <sip:anonymous@',
      ),
    );
    const r = await sipp(scenario, service.sipPort, ["-s", "905551112233"]);
    await Deno.remove(scenario);
    assert.equal(r.code, 0, r.stdout);
    const started = await waitFor(() =>
      consumer.events.slice(before).find((e) => e.routingKey === "call.started")
    );
    const event = CallStartedEvent.fromJSON(started?.body);
    assert.deepEqual(event.sipHeaders, { "x-customer-id": "42", "x-campaign": "spring" });
    assert.equal(
      event.dialplanResolution?.matchedUser?.name,
      "Demo Caller",
      "the asserted caller was looked up",
    );
    assert.match(event.fromUri, /^sip:anonymous@/);
  });
});
