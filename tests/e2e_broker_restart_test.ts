// The real broker restarted (rabbitmqctl stop_app, wait, start_app) in the middle of
// SIPp traffic of several hundred calls: every answered call's call.started,
// call.answered and call.ended end up on a durable queue (deduplicated by message id:
// delivery is at-least-once), at most 1% of calls fail, no port stays allocated.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import amqp from "amqplib";
import { EVENTS_EXCHANGE } from "../orchestration/events.ts";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  e2eTest,
  missingPeers,
  RABBITMQ_URL,
  scenarioPath,
  sipp,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rabbitmqctl(...args: string[]): Promise<void> {
  const out = await new Deno.Command("rabbitmqctl", { args, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`rabbitmqctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Everything on `queue`, by message id (a redelivered event counts once). */
async function drainQueue(queue: string): Promise<Map<string, { routingKey: string; callId: string }>> {
  const connection = await amqp.connect(RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    const seen = new Map<string, { routingKey: string; callId: string }>();
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message === false) break;
      const body = JSON.parse(Buffer.from(message.content).toString("utf8")) as { callId: string };
      seen.set(String(message.properties.messageId), {
        routingKey: message.fields.routingKey,
        callId: body.callId,
      });
    }
    await channel.deleteQueue(queue);
    return seen;
  } finally {
    await connection.close();
  }
}

e2eTest(
  "e2e broker restart - stop_app/start_app during SIPp traffic: every event delivered, <=1% failed, no port left",
  skip,
  async () => {
    const queue = `broker-restart-test-${crypto.randomUUID()}`;
    {
      const connection = await amqp.connect(RABBITMQ_URL);
      const channel = await connection.createChannel();
      await channel.assertExchange(EVENTS_EXCHANGE, "topic", { durable: true });
      await channel.assertQueue(queue, { durable: true });
      await channel.bindQueue(queue, EVENTS_EXCHANGE, "call.#");
      await connection.close();
    }
    await using backends = await startReferenceServers();
    await using service = await startService(backendsEnv(backends));
    // 40 calls/s for 10 s, each held 200 ms; the broker goes away after 3 s for 3 s.
    const traffic = sipp(scenarioPath("uac_call.xml"), service.sipPort, [
      "-s",
      "905551112233",
      "-r",
      "40",
      "-m",
      "400",
      "-l",
      "200",
      "-d",
      "200",
      "-timeout",
      "60",
    ]);
    await sleep(3000);
    await rabbitmqctl("stop_app");
    await sleep(3000);
    await rabbitmqctl("start_app");
    await rabbitmqctl("await_startup");
    const result = await traffic;
    const successful = Number(/Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(result.stdout)?.[1] ?? "0");
    const failed = Number(/Failed call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(result.stdout)?.[1] ?? "0");
    assert.ok(successful + failed >= 400, result.stdout);
    assert.ok(failed <= 4, `at most 1% of 400 calls failed: ${failed}`);

    // The outbox re-sends what the restart interrupted; wait for the broker's confirms.
    const confirmed = await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).text();
      return /^sip_signaling_events_pending 0$/m.test(text);
    }, 30_000);
    assert.ok(confirmed, "every event confirmed by the broker");
    assert.equal(await service.stop(), 0);
    const events = await drainQueue(queue);
    const byCall = new Map<string, string[]>();
    for (const { routingKey, callId } of events.values()) {
      byCall.set(callId, [...(byCall.get(callId) ?? []), routingKey]);
    }
    const started = [...byCall.entries()].filter(([, types]) => types.includes("call.started"));
    assert.equal(started.length, successful, "one call.started per answered call");
    for (const [callId, types] of started) {
      assert.deepEqual(types.sort(), ["call.answered", "call.ended", "call.started"], callId);
    }
    assert.equal(backends.ports.allocated.size, 0, "no port stays allocated");
    // deno-lint-ignore no-console
    console.log(
      `broker restart: ${successful} calls answered, ${failed} failed, ${events.size} distinct events`,
    );
  },
);
