// Event publishing against the real RabbitMQ broker: confirms, properties, and the
// outbox across an outage (the broker is reached through a TCP proxy the test can cut).
import assert from "node:assert/strict";
import { AmqpEventPublisher, callEnded } from "../orchestration/events.ts";
import { CuttableProxy, EventConsumer, freeTcpPort, missingPeers, waitFor } from "./e2e/harness.ts";

const skip = await missingPeers();

Deno.test({
  name: "events - kept in the outbox during a broker outage and delivered after reconnecting",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const proxy = new CuttableProxy(freeTcpPort(), { hostname: "127.0.0.1", port: 5672 });
  proxy.up();
  await using consumer = await EventConsumer.start("call.ended");
  const publisher = new AmqpEventPublisher({
    url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    reconnectMs: 50,
    maxReconnectMs: 200,
  });
  try {
    await publisher.start();
    const event = (n: number) =>
      callEnded({
        traceId: `trace-${n}`,
        callId: `outage-${n}@test`,
        reason: "normal_clearing",
        media: { callerRtpAddr: "192.0.2.10:6000", serverRtpPort: 10000 },
      });
    publisher.publish(event(1));
    assert.ok(await publisher.drain(3000), "confirmed while the broker is reachable");

    await proxy.down();
    await waitFor(() => !publisher.connected, 3000);
    publisher.publish(event(2));
    publisher.publish(event(3));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(publisher.pending, 2, "kept, not dropped, while the broker is away");

    proxy.up();
    assert.ok(await publisher.drain(5000), "delivered after reconnecting");
    const got = await waitFor(() => {
      const ids = consumer.events.map((e) => e.body.callId);
      return ["outage-1@test", "outage-2@test", "outage-3@test"].every((id) => ids.includes(id)) && ids;
    }, 5000);
    assert.ok(
      got,
      `all three reached the consumer: ${JSON.stringify(consumer.events.map((e) => e.body.callId))}`,
    );
    for (const e of consumer.events) {
      assert.equal(e.routingKey, "call.ended");
      assert.equal(e.properties.deliveryMode, 2);
      assert.equal(e.properties.contentType, "application/json");
    }
  } finally {
    await publisher.close();
    await proxy.down();
  }
});
