// End to end through a RabbitMQ outage: the service reaches the real broker through a
// TCP proxy the test cuts. Calls go on while few events wait; once more than
// SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING wait, new calls get 503 + Retry-After; when
// the broker is back every kept event arrives and calls are taken again.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  CuttableProxy,
  e2eTest,
  EventConsumer,
  freeTcpPort,
  missingPeers,
  scenarioFrom,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();

function metric(port: number, name: string): Promise<number> {
  return serviceMetric(port, `sip_signaling_${name}`);
}

e2eTest(
  "e2e - broker outage: calls go on, then 503 past the event backlog, every event delivered after",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    const proxy = new CuttableProxy(freeTcpPort(), { hostname: "127.0.0.1", port: 5672 });
    proxy.up();
    try {
      await using service = await startService({
        ...backendsEnv(backends),
        RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
        SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING: "4",
      });
      const call = async () => {
        const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
          "-s",
          "905551112233",
          "-d",
          "50",
        ]);
        assert.equal(r.code, 0, r.stdout);
      };
      await call();
      await waitFor(() => consumer.events.length === 3, 5000);

      await proxy.down();
      await call(); // 3 events wait: still under 4
      await call(); // admitted at 3 waiting; now 6 wait
      assert.equal(await metric(service.httpPort, "events_pending"), 6, "kept while the broker is away");
      const scenario = await scenarioFrom("uac_reject.xml", {
        STATUS: "503",
        FROM: "905321234567",
        CODECS: "0 8 101",
        SE: "1800",
      });
      try {
        const refused = await sipp(scenario, service.sipPort, ["-s", "905551112233"]);
        assert.equal(refused.code, 0, refused.stdout);
        assert.match(refused.log, /status=503 retry_after=\d+/);

        proxy.up();
        let pending = NaN;
        for (const until = Date.now() + 20_000; Date.now() < until;) {
          pending = await metric(service.httpPort, "events_pending");
          if (pending === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(pending, 0, "the outbox empties once the broker is back");
        await call(); // taken again
      } finally {
        await Deno.remove(scenario);
      }
      const ok = await waitFor(() => consumer.events.length >= 12, 5000);
      const byType = (type: string) => consumer.events.filter((e) => e.routingKey === type).length;
      assert.ok(ok, `events: ${JSON.stringify(consumer.events.map((e) => e.routingKey))}`);
      assert.deepEqual(
        [byType("call.started"), byType("call.answered"), byType("call.ended")],
        [4, 4, 4],
        "every event of the four answered calls, none for the refused one",
      );
      assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "every port released");
    } finally {
      await proxy.down();
    }
  },
);
