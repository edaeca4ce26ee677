// End to end: SIPp calls the service (subprocess, -P=service) which talks real gRPC to
// reference backends in this process and publishes to the real RabbitMQ broker.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import { CallEndedEvent, CallStartedEvent } from "../proto/gen/sentiric/event/v1/event.ts";
import { ActionType } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import {
  e2eTest,
  EventConsumer,
  freeTcpPort,
  missingPeers,
  RABBITMQ_URL,
  scenarioFrom,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();

e2eTest("e2e - SIPp calls: setup, events, failure table, TerminateCall", skip, async (t) => {
  await using backends = await startReferenceServers();
  await using consumer = await EventConsumer.start();
  await using service = await startService({
    DIALPLAN_SERVICE_TARGET_GRPC_URL: backends.dialplanUrl,
    MEDIA_SERVICE_GRPC_URL: backends.mediaUrl, // the earlier spelling still works
    USER_SERVICE_TARGET_GRPC_URL: backends.userUrl,
    RABBITMQ_URL,
    SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "1000",
  });

  await t.step(
    "a call is set up and torn down; call.started, call.answered, call.ended reach the bus",
    async () => {
      const before = consumer.events.length;
      const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
        "-s",
        "905551112233",
        "-d",
        "300",
      ]);
      assert.equal(r.code, 0, r.stdout);
      const ended = await waitFor(() =>
        consumer.events.slice(before).find((e) => e.routingKey === "call.ended")
      );
      assert.ok(ended, "call.ended published");
      const events = consumer.events.slice(before);
      assert.deepEqual(events.map((e) => e.routingKey), ["call.started", "call.answered", "call.ended"]);
      for (const e of events) {
        assert.equal(e.properties.contentType, "application/json");
        assert.equal(e.properties.deliveryMode, 2, "persistent");
        assert.ok(typeof e.properties.messageId === "string" && e.properties.messageId.length > 0);
      }
      assert.equal(new Set(events.map((e) => e.properties.messageId)).size, 3, "unique message-id per event");
      // Contract: decode with the .proto definition and compare field by field.
      const started = CallStartedEvent.fromJSON(events[0]?.body);
      assert.equal(started.eventType, "call.started");
      assert.match(started.callId, /@127\.0\.0\.1$/);
      assert.match(started.fromUri, /^sip:905321234567@127\.0\.0\.1:\d+$/);
      assert.equal(started.toUri.startsWith("sip:905551112233@127.0.0.1"), true);
      assert.ok(
        started.timestamp instanceof Date && Math.abs(Date.now() - started.timestamp.getTime()) < 60_000,
      );
      assert.equal(started.dialplanResolution?.action?.type, ActionType.ACTION_TYPE_START_AI_CONVERSATION);
      assert.equal(
        started.dialplanResolution?.matchedUser?.name,
        "Demo Caller",
        "dialplan asked the user service",
      );
      assert.match(started.mediaInfo?.callerRtpAddr ?? "", /^127\.0\.0\.1:\d+$/);
      assert.ok((started.mediaInfo?.serverRtpPort ?? 0) >= 10000);
      assert.deepEqual(Object.keys(events[0]?.body ?? {}).sort(), [
        "callId",
        "dialplanResolution",
        "eventType",
        "fromUri",
        "mediaInfo",
        "timestamp",
        "toUri",
        "traceId",
      ]);
      const endedEvent = CallEndedEvent.fromJSON(events[2]?.body);
      assert.equal(endedEvent.reason, "normal_clearing");
      assert.deepEqual(endedEvent.mediaInfo, started.mediaInfo);
      // One trace id per call: in every event and every gRPC call of it.
      assert.equal(new Set(events.map((e) => e.body.traceId)).size, 1);
      // ReleasePort goes out with call.ended, through the gRPC client process: it may land after.
      const tracedOf = () =>
        backends.traceIds.filter((x) => x.traceId === started.traceId).map((x) => x.method);
      await waitFor(() => tracedOf().includes("ReleasePort"), 3000);
      const traced = tracedOf();
      assert.deepEqual(traced.sort(), [
        "AllocatePort",
        "FindUserByContact",
        "ReleasePort",
        "ResolveDialplan",
      ]);
      assert.equal(backends.ports.allocated.size, 0, "port released");
    },
  );

  const cases: {
    name: string;
    number: string;
    status: number;
    from?: string;
    codecs?: string;
    se?: string;
    retryAfter?: boolean;
    before?: () => void;
    after?: () => void;
  }[] = [
    { name: "dialplan NOT_FOUND", number: "905550000999", status: 404 },
    { name: "UNSPECIFIED action", number: "905550000000", status: 480 },
    { name: "maintenance mode", number: "905550000009", status: 503, retryAfter: true },
    {
      name: "anonymous caller on a route that blocks it",
      number: "905550000008",
      status: 433,
      from: "anonymous",
    },
    { name: "dialplan deadline exceeded", number: "905550000408", status: 503, retryAfter: true },
    { name: "no common codec", number: "905551112233", status: 488, codecs: "18 9" },
    { name: "Session-Expires below Min-SE", number: "905551112233", status: 422, se: "30" },
    {
      name: "media cannot allocate",
      number: "905551112233",
      status: 503,
      before: () => (backends.mediaFailure = grpc.status.RESOURCE_EXHAUSTED),
      after: () => (backends.mediaFailure = undefined),
    },
  ];
  for (const c of cases) {
    await t.step(`${c.name} -> ${c.status}, no call.started, no port left allocated`, async () => {
      const before = consumer.events.length;
      c.before?.();
      try {
        const scenario = await scenarioFrom("uac_reject.xml", {
          STATUS: String(c.status),
          FROM: c.from ?? "905321234567",
          CODECS: c.codecs ?? "0 8 101",
          SE: c.se ?? "1800",
        });
        const r = await sipp(scenario, service.sipPort, ["-s", c.number]);
        await Deno.remove(scenario);
        assert.equal(r.code, 0, r.stdout);
        assert.match(r.log, new RegExp(`status=${c.status}`));
        if (c.retryAfter) assert.match(r.log, /retry_after=\d+/);
      } finally {
        c.after?.();
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(consumer.events.slice(before).map((e) => e.routingKey), []);
      assert.equal(backends.ports.allocated.size, 0);
    });
  }

  await t.step("TerminateCall sends BYE to the caller, releases the port, publishes call.ended", async () => {
    const terminate = (callId: string, reason: string) => terminateCall(service.grpcPort, callId, reason);
    const unknown = await terminate("no-such-call", "completed_by_agent");
    assert.equal(unknown.success, false);
    assert.match(unknown.message, /no-such-call/);
    const before = consumer.events.length;
    const caller = sipp(scenarioPath("uac_wait_bye.xml"), service.sipPort, ["-s", "905551112233"]);
    const started = await waitFor(() =>
      consumer.events.slice(before).find((e) => e.routingKey === "call.started")
    );
    assert.ok(started);
    const callId = String(started.body.callId);
    await waitFor(() => consumer.forCall(callId).some((e) => e.routingKey === "call.answered"));
    const r = await terminate(callId, "completed_by_agent");
    assert.deepEqual(r, { success: true, message: "BYE sent" });
    const result = await caller;
    assert.equal(result.code, 0, result.stdout);
    const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "completed_by_agent");
    // ReleasePort and call.ended leave together; the release may land second.
    assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "port released");
    const again = await terminate(callId, "completed_by_agent");
    assert.equal(again.success, false, "a call ends once");
  });

  await t.step("health and metrics over HTTP", async () => {
    const health = await fetch(`http://127.0.0.1:${service.httpPort}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    const metrics = await (await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).text();
    assert.match(metrics, /sip_signaling_calls_answered_total [1-9]/);
    assert.match(metrics, /sip_signaling_active_dialogs 0/);
    const value = (name: string) => serviceMetric(service.httpPort, name);
    assert.ok(await value("process_cpu_seconds_total") > 0, "process CPU exported");
    assert.ok(await value("process_resident_memory_bytes") > 10_000_000, "resident memory exported");
    const started = await value("process_start_time_seconds");
    assert.ok(Math.abs(started - Date.now() / 1000) < 600, `start time is recent (${started})`);
  });

  await t.step("no log line carries the RabbitMQ password", () => {
    const text = JSON.stringify(service.logs);
    assert.ok(!text.includes("guest:guest@"), "password redacted");
    assert.ok(text.includes("guest:***@"));
    const callLines = service.logs.filter((l) =>
      l.category !== undefined && String(l.category).includes("call")
    );
    assert.ok(callLines.every((l) => typeof (l.properties as Record<string, unknown>)?.traceId === "string"));
  });
});

e2eTest("e2e - dialplan unreachable -> 503 with Retry-After, nothing published", skip, async () => {
  await using backends = await startReferenceServers();
  await using consumer = await EventConsumer.start();
  await using service = await startService({
    DIALPLAN_SERVICE_GRPC_URL: `127.0.0.1:${freeTcpPort()}`, // nothing listens
    MEDIA_SERVICE_TARGET_GRPC_URL: backends.mediaUrl,
    RABBITMQ_URL,
    SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "1000",
  });
  const scenario = await scenarioFrom("uac_reject.xml", {
    STATUS: "503",
    FROM: "905321234567",
    CODECS: "0 8",
    SE: "1800",
  });
  const r = await sipp(scenario, service.sipPort, ["-s", "905551112233"]);
  await Deno.remove(scenario);
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.log, /status=503 retry_after=\d+/);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(consumer.events.length, 0);
  assert.equal(backends.ports.allocated.size, 0);
});
