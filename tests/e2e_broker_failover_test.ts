// RABBITMQ_URL naming a cluster's nodes (issue: scale-out): with the first node dead,
// events flow through the second; with the first node lost in the middle of SIPp
// traffic (a proxy in front of the real broker, cut and kept down), the service moves
// to the next node and no event of any answered call is lost (deduplicated by message
// id: delivery is at-least-once).
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  CuttableProxy,
  drainEventQueue,
  durableEventQueue,
  e2eTest,
  freeTcpPort,
  missingPeers,
  RABBITMQ_URL,
  scenarioPath,
  serviceMetric,
  sipp,
  sippCounts,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const broker = new URL(RABBITMQ_URL.replace(/^amqp/, "http"));
const BROKER = { hostname: broker.hostname, port: Number(broker.port || 5672) };
/** The broker's URL with its address swapped for 127.0.0.1:`port`. */
const viaPort = (port: number) => RABBITMQ_URL.replace(/@[^/]+/, `@127.0.0.1:${port}`);

/** Event types per call on `queue`, a redelivered event (same message id) once. */
async function eventsByCall(queue: string): Promise<Map<string, string[]>> {
  const byCall = new Map<string, string[]>();
  for (const { routingKey, callId } of (await drainEventQueue(queue)).values()) {
    byCall.set(callId, [...(byCall.get(callId) ?? []), routingKey]);
  }
  return byCall;
}

const pendingIsZero = (httpPort: number) => async () =>
  (await serviceMetric(httpPort, "sip_signaling_events_pending")) === 0;

e2eTest("e2e broker failover - the first node dead: events go through the second", skip, async () => {
  const queue = await durableEventQueue("broker-failover-test");
  await using backends = await startReferenceServers();
  await using service = await startService({
    ...backendsEnv(backends),
    RABBITMQ_URL: `${viaPort(freeTcpPort())},${RABBITMQ_URL}`,
  });
  const tag = `failover-${crypto.randomUUID().slice(0, 8)}`;
  const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
    "-cid_str",
    `${tag}-%u-%p@%s`,
    "-s",
    "905551112233",
    "-m",
    "3",
  ]);
  assert.equal(r.code, 0, r.stdout);
  assert.ok(await waitFor(pendingIsZero(service.httpPort), 10_000), "every event confirmed");
  assert.equal(await serviceMetric(service.httpPort, "sip_signaling_broker_connected"), 1);
  const byCall = new Map([...(await eventsByCall(queue))].filter(([callId]) => callId.startsWith(tag)));
  assert.equal(byCall.size, 3);
  for (const types of byCall.values()) {
    assert.deepEqual(types.sort(), ["call.answered", "call.ended", "call.started"]);
  }
  const text = JSON.stringify(service.logs);
  assert.ok(!text.includes("guest:guest@"), "no password in the logs");
});

e2eTest(
  "e2e broker failover - the node in use lost mid-traffic: the next one takes over, nothing lost",
  skip,
  async () => {
    const queue = await durableEventQueue("broker-failover-test");
    const proxy = new CuttableProxy(freeTcpPort(), BROKER);
    proxy.up();
    try {
      await using backends = await startReferenceServers();
      await using service = await startService({
        ...backendsEnv(backends),
        RABBITMQ_URL: `${viaPort(proxy.port)},${RABBITMQ_URL}`,
      });
      // 40 calls/s for 6 s, each held 200 ms; the first node goes away after 2 s, for good.
      const traffic = sipp(scenarioPath("uac_call.xml"), service.sipPort, [
        "-s",
        "905551112233",
        "-r",
        "40",
        "-m",
        "240",
        "-l",
        "200",
        "-d",
        "200",
        "-timeout",
        "60",
      ]);
      await sleep(2000);
      await proxy.down();
      const result = await traffic;
      const { successful, failed } = sippCounts(result.stdout);
      assert.equal(successful, 240, result.stdout);
      assert.equal(failed, 0);
      assert.ok(await waitFor(pendingIsZero(service.httpPort), 20_000), "every event confirmed");
      assert.equal(await service.stop(), 0);
      const byCall = await eventsByCall(queue);
      assert.equal(byCall.size, 240, "every call's events reached the queue");
      for (const [callId, types] of byCall) {
        assert.deepEqual(types.sort(), ["call.answered", "call.ended", "call.started"], callId);
      }
      const lines = service.logs.map((l) => JSON.stringify(l));
      assert.ok(lines.some((l) => l.includes("Lost RabbitMQ connection")), "the loss was logged");
      assert.ok(
        lines.some((l) =>
          l.includes("Connected to RabbitMQ") && l.includes(`${BROKER.hostname}:${BROKER.port}`)
        ),
        "connected to the second node",
      );
      assert.equal(backends.ports.allocated.size, 0);
    } finally {
      await proxy.down();
    }
  },
);
