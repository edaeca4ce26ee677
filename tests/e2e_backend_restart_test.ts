// The backends restarted under the service, as a deploy of the dialplan or media
// service does it: their gRPC servers close (grpc-js forceShutdown, which sends GOAWAY)
// and come back on the same ports. Deno 2.9's node:http2 client can crash inside
// nghttp2 on such a GOAWAY (denoland/deno#36788; before the gRPC clients moved to a
// process of their own, the service died with SIGSEGV after 10 calls and one restart),
// so the service must stay up, its calls up must stay up, and calls after the backends
// are back must be answered.
import assert from "node:assert/strict";
import { type ReferenceServers, startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  callUpUntilOurBye,
  e2eTest,
  EventConsumer,
  missingPeers,
  probeOptions,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `count` calls at 20 a second; SIPp's exit code (0: every call completed). */
async function calls(sipPort: number, count: number): Promise<number> {
  const r = await sipp(scenarioPath("uac_call.xml"), sipPort, [
    ...["-s", "905551112233", "-m", String(count), "-r", "20", "-d", "50"],
  ]);
  return r.code;
}

e2eTest(
  "e2e backend restart - backends closing with GOAWAY and coming back, 3 times: service and calls up survive",
  skip,
  async () => {
    let backends: ReferenceServers = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    try {
      const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
      for (let round = 1; round <= 3; round++) {
        assert.equal(await calls(service.sipPort, 20), 0, `round ${round}: 20 calls before the restart`);
        await backends.close(); // GOAWAY on the service's channels
        await sleep(300);
        assert.equal(await probeOptions(service.sipPort), 200, `round ${round}: the service is up`);
        backends = await startReferenceServers("127.0.0.1", undefined, backends);
        // The channels reconnect within their backoff (at most 2 s); calls wait for them.
        assert.equal(await calls(service.sipPort, 20), 0, `round ${round}: 20 calls after the restart`);
      }
      const answer = await terminateCall(service.grpcPort, callId, "completed_by_agent");
      assert.equal(answer.success, true, "the call up across the restarts is still known");
      assert.equal((await caller).code, 0, "the caller got our BYE");
      assert.ok(
        await waitFor(() =>
          consumer.events.some((e) => e.routingKey === "call.ended" && e.body.callId === callId)
        ),
        "call.ended for it",
      );
      assert.equal(await service.stop(), 0, service.stderrTail());
    } finally {
      await backends.close();
    }
  },
);

e2eTest(
  "e2e backend restart - the gRPC client process killed by a signal is started again; calls go on",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    const pidOf = () =>
      (service.logs.findLast((r) => String(r.message ?? "").startsWith("Backend calls made by process"))
        ?.properties as { pid?: number } | undefined)?.pid;
    const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
    for (const signal of ["-ABRT", "-KILL"]) {
      const before = pidOf();
      assert.ok(before !== undefined, "the process is announced with its pid");
      await new Deno.Command("kill", { args: [signal, String(before)] }).output();
      const next = await waitFor(() => {
        const pid = pidOf();
        return pid !== undefined && pid !== before ? pid : undefined;
      }, 5000);
      assert.ok(next !== undefined, `a new gRPC client process after ${signal}`);
    }
    assert.equal(await serviceMetric(service.httpPort, "sip_signaling_grpc_client_restarts_total"), 2);
    assert.equal(await calls(service.sipPort, 10), 0, "10 calls on the new process");
    const answer = await terminateCall(service.grpcPort, callId, "completed_by_agent");
    assert.equal(answer.success, true);
    assert.equal((await caller).code, 0, "the caller got our BYE");
    // Its port goes back through the new process: none left allocated but nothing.
    assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "every port released");
    assert.equal(await service.stop(), 0, service.stderrTail());
  },
);
