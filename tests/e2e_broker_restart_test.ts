// The real broker restarted (rabbitmqctl stop_app, wait, start_app) in the middle of
// SIPp traffic of several hundred calls: every answered call's call.started,
// call.answered and call.ended end up on a durable queue (deduplicated by message id:
// delivery is at-least-once), at most 1% of calls fail, no port stays allocated.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  drainEventQueue,
  durableEventQueue,
  e2eTest,
  missingPeers,
  scenarioPath,
  sipp,
  sippCounts,
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

e2eTest(
  "e2e broker restart - stop_app/start_app during SIPp traffic: every event delivered, <=1% failed, no port left",
  skip,
  async () => {
    const queue = await durableEventQueue("broker-restart-test");
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
    const { successful, failed } = sippCounts(result.stdout);
    assert.ok(successful + failed >= 400, result.stdout);
    assert.ok(failed <= 4, `at most 1% of 400 calls failed: ${failed}`);

    // The outbox re-sends what the restart interrupted; wait for the broker's confirms.
    const confirmed = await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).text();
      return /^sip_signaling_events_pending 0$/m.test(text);
    }, 30_000);
    assert.ok(confirmed, "every event confirmed by the broker");
    assert.equal(await service.stop(), 0);
    const events = await drainEventQueue(queue);
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
