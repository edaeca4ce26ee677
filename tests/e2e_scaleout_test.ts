// Two instances behind the platform's gateway (Kamailio, deploy/kamailio/kamailio.cfg
// as shipped): calls spread over both and stay on the instance that answered them;
// kill -9 of one instance and SIGTERM of another mid-traffic cost no call that the
// issue says must survive.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  EventConsumer,
  missingPeers,
  type RunningService,
  scenarioPath,
  serviceMetric,
  sipp,
  sippCounts,
  type SippResult,
  startService,
  waitFor,
} from "./e2e/harness.ts";
import { kamailioAvailable, startGateway } from "./e2e/gateway.ts";

const skip = (await missingPeers()) !== undefined || !(await kamailioAvailable());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: skip, sanitizeOps: false, sanitizeResources: false }, fn);

const counts = (r: SippResult) => sippCounts(r.stdout);

/** SIPp callers through the gateway: `calls` at `rate`/s, each held `holdMs`. */
function traffic(port: number, calls: number, rate: number, holdMs: number): Promise<SippResult> {
  return sipp(scenarioPath("uac_call.xml"), port, [
    "-s",
    "905551112233",
    "-m",
    String(calls),
    "-r",
    String(rate),
    "-l",
    String(calls),
    "-d",
    String(holdMs),
    "-timeout",
    "60",
  ]);
}

const answered = (s: RunningService) => serviceMetric(s.httpPort, "sip_signaling_calls_answered_total");

for (const transport of ["udp", "tcp"] as const) {
  test(`e2e scale-out - two instances behind Kamailio (${transport} to them): calls spread, in-dialog requests stay, events complete`, async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using a = await startService(backendsEnv(backends));
    await using b = await startService(backendsEnv(backends));
    const gateway = await startGateway([a.sipPort, b.sipPort], { transport });
    try {
      const r = await traffic(gateway.port, 20, 10, 300);
      assert.deepEqual(counts(r), { successful: 20, failed: 0 }, r.stdout);
      const [onA, onB] = [await answered(a), await answered(b)];
      assert.equal(onA + onB, 20);
      assert.ok(onA >= 5 && onB >= 5, `spread over both: ${onA} and ${onB}`);
      // Each instance ended every call it answered on the caller's BYE: ACK and BYE found it.
      for (const [s, n] of [[a, onA], [b, onB]] as const) {
        assert.equal(
          await serviceMetric(s.httpPort, 'sip_signaling_calls_ended_total{reason="normal_clearing"}'),
          n,
        );
        assert.equal(await serviceMetric(s.httpPort, "sip_signaling_active_dialogs"), 0);
      }
      const ended = await waitFor(() =>
        consumer.events.filter((e) => e.routingKey === "call.ended").length === 20 || undefined
      );
      assert.ok(ended, "20 call.ended events");
      const byCall = new Map<string, string[]>();
      for (const e of consumer.events) {
        const id = String(e.body.callId);
        byCall.set(id, [...(byCall.get(id) ?? []), e.routingKey]);
      }
      assert.equal(byCall.size, 20);
      for (const types of byCall.values()) {
        assert.deepEqual(types, ["call.started", "call.answered", "call.ended"]);
      }
      assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "every port released");
      if (transport === "tcp") {
        const accepted = (s: RunningService) =>
          serviceMetric(s.httpPort, 'sip_signaling_sip_connections_accepted_total{transport="TCP"}');
        assert.ok((await accepted(a)) >= 1 && (await accepted(b)) >= 1, "the gateway reached both over TCP");
      }
    } finally {
      await gateway.stop();
    }
  });
}

test("e2e scale-out - kill -9 of one instance: new calls succeed on the other, its calls untouched", async () => {
  await using backends = await startReferenceServers();
  await using a = await startService(backendsEnv(backends));
  await using b = await startService(backendsEnv(backends));
  const gateway = await startGateway([a.sipPort, b.sipPort]);
  try {
    // Calls held 6 s on both instances; one instance dies 1.5 s in.
    const held = traffic(gateway.port, 10, 10, 6000);
    await sleep(1500);
    const onB = await answered(b);
    assert.ok(onB >= 3 && onB <= 7, `B holds some of the calls: ${onB}`);
    a.signal("SIGKILL");
    await a.exited;
    // Once the dispatcher has noticed (1 s probes), every new call succeeds.
    await sleep(2500);
    const after = await traffic(gateway.port, 20, 10, 200);
    assert.deepEqual(counts(after), { successful: 20, failed: 0 }, after.stdout);
    // The calls B held ran to their end (the caller's BYE); A's died with it.
    const r = await held;
    assert.deepEqual(counts(r), { successful: onB, failed: 10 - onB }, r.stdout);
    assert.equal(
      await serviceMetric(b.httpPort, 'sip_signaling_calls_ended_total{reason="normal_clearing"}'),
      onB + 20,
    );
  } finally {
    await gateway.stop();
  }
});

test("e2e scale-out - SIGTERM of one instance mid-traffic: out of rotation, its calls finish, exit 0, no call fails", async () => {
  await using backends = await startReferenceServers();
  await using a = await startService(backendsEnv(backends));
  await using b = await startService(backendsEnv(backends));
  const gateway = await startGateway([a.sipPort, b.sipPort]);
  try {
    // 40 calls at 10/s, each held 4 s; A drains from 1 s on.
    const calls = traffic(gateway.port, 40, 10, 4000);
    await sleep(1000);
    const heldByA = await answered(a);
    assert.ok(heldByA >= 2, `A holds calls when it drains: ${heldByA}`);
    const drainAt = Date.now();
    a.signal("SIGTERM");
    // Watch which new INVITEs still reach A, until it exits.
    let offered = await serviceMetric(a.httpPort, "sip_signaling_calls_offered_total");
    let lastNewInviteAt = drainAt;
    let exited = false;
    void a.exited.then(() => exited = true);
    while (!exited) {
      const now = await serviceMetric(a.httpPort, "sip_signaling_calls_offered_total").catch(() => offered);
      if (now > offered) lastNewInviteAt = Date.now();
      if (Number.isFinite(now)) offered = now;
      await sleep(100);
    }
    assert.equal(await a.exited, 0, "A exits 0 once its calls are over");
    const probeMs = lastNewInviteAt - drainAt;
    assert.ok(probeMs <= 2500, `A got new INVITEs only until a probe took it out (${probeMs} ms)`);
    const r = await calls;
    assert.deepEqual(counts(r), { successful: 40, failed: 0 }, r.stdout);
    assert.ok(Date.now() - drainAt >= 2500, "A ran until its calls ended");
    assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "every port released");
  } finally {
    await gateway.stop();
  }
});
