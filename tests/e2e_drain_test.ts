// SIGTERM drains (CONTRACTS.md 7.4): a rolling deploy cuts no call. The service runs as
// a subprocess under -P=service; SIPp calls it; events come from the real broker.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  callUpUntilOurBye,
  e2eTest,
  EventConsumer,
  missingPeers,
  probeOptions,
  scenarioPath,
  sipp,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

e2eTest(
  "e2e drain - SIGTERM: the call up runs to the caller's BYE, OPTIONS and INVITE get 503 meanwhile, exit 0",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    // The caller hangs up by itself 3 s after the answer.
    const caller = sipp(scenarioPath("uac_call.xml"), service.sipPort, ["-s", "905551112233", "-d", "3000"]);
    const answered = await waitFor(() => consumer.events.find((e) => e.routingKey === "call.answered"));
    assert.ok(answered, "the call is up");
    const callId = String(answered.body.callId);
    const termAt = performance.now();
    service.signal("SIGTERM");
    await sleep(300);
    service.signal("SIGTERM"); // a process manager may deliver it twice: nothing changes
    assert.equal(await probeOptions(service.sipPort), 503, "OPTIONS 503: the dispatcher takes us out");
    const refused = await sipp(scenarioPath("uac_call.xml"), service.sipPort, ["-s", "905551112233"]);
    assert.match(refused.stdout + refused.log, /503/, "a new INVITE gets 503");
    const code = await service.exited;
    const exitAfter = performance.now() - termAt;
    const result = await caller;
    assert.equal(result.code, 0, `the call ran to its own end: ${result.stdout}`);
    assert.equal(code, 0);
    assert.ok(exitAfter > 2000, `exit only after the caller's BYE (${Math.round(exitAfter)} ms)`);
    const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "normal_clearing", "the caller hung up, not us");
    assert.equal(backends.ports.allocated.size, 0, "every port back with the media service");
  },
);

e2eTest(
  "e2e drain - past SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S the calls still up get our BYE (drain_timeout)",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService({
      ...backendsEnv(backends),
      SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S: "1",
    });
    const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
    assert.equal(await service.stop(), 0, "exit code 0");
    const result = await caller;
    assert.equal(result.code, 0, `the caller got our BYE: ${result.stdout}`);
    const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "drain_timeout");
    assert.equal(backends.ports.allocated.size, 0);
  },
);

e2eTest(
  "e2e drain - SIGTERM in the middle of SIPp traffic: no call cut, no event lost, exit 0",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    // 40 calls/s, each held 1.5 s by the caller, for 4 s; SIGTERM after 2 s. Past the
    // exit, SIPp's last INVITEs go unanswered: -timeout bounds the run.
    const traffic = sipp(scenarioPath("uac_call.xml"), service.sipPort, [
      "-s",
      "905551112233",
      "-r",
      "40",
      "-m",
      "160",
      "-l",
      "200",
      "-d",
      "1500",
      "-timeout",
      "8",
    ]);
    await sleep(2000);
    service.signal("SIGTERM");
    const result = await traffic;
    assert.equal(await service.exited, 0, "exit 0");
    const started = consumer.events.filter((e) => e.routingKey === "call.started").map((e) =>
      String(e.body.callId)
    );
    assert.ok(started.length >= 40, `calls were up at SIGTERM (${started.length})`);
    await waitFor(
      () => started.every((id) => consumer.forCall(id).some((e) => e.routingKey === "call.ended")),
      5000,
    );
    for (const id of started) {
      const types = consumer.forCall(id).map((e) => e.routingKey);
      assert.deepEqual(types.filter((t) => t !== "call.started").sort(), ["call.answered", "call.ended"], id);
      const ended = consumer.forCall(id).find((e) => e.routingKey === "call.ended");
      assert.equal(ended?.body.reason, "normal_clearing", `${id} ended by its caller, not cut by the deploy`);
    }
    const successful = Number(/Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(result.stdout)?.[1] ?? "-1");
    assert.equal(successful, started.length, "every call that was answered completed at the caller");
    assert.equal(backends.ports.allocated.size, 0, "every port back with the media service");
  },
);

e2eTest(
  "e2e drain - SIGINT during a drain ends it at once: our BYE, terminated_by_request, exit 0",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
    service.signal("SIGTERM");
    await sleep(500);
    assert.equal(await probeOptions(service.sipPort), 503, "draining");
    const interruptedAt = performance.now();
    service.signal("SIGINT");
    assert.equal(await service.exited, 0);
    assert.ok(performance.now() - interruptedAt < 5000, "at once, not after the drain timeout");
    assert.equal((await caller).code, 0, "the caller got our BYE");
    const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "terminated_by_request");
    assert.equal(backends.ports.allocated.size, 0);
  },
);
