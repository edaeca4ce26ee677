// Our gRPC server (TerminateCall) against abusive HTTP/2 clients, each a child
// process: Node (sessions closed or destroyed with 16 streams in flight, TCP resets,
// garbage, half prefaces) and Deno (grpc-js clients that start calls and leave,
// node:http2 sessions destroyed mid-stream). A node:http2 server on Deno was seen to
// abort the whole process on such a client (nghttp2 assertion, denoland/deno#36788):
// the service must never exit, and must still answer TerminateCall and SIP afterwards.
// ABUSE_ROUNDS sets the rounds per client (default 250).
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  callUpUntilOurBye,
  e2eTest,
  EventConsumer,
  missingPeers,
  probeOptions,
  serviceMetric,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();
const ROUNDS = Deno.env.get("ABUSE_ROUNDS") ?? "250";
const ROOT = new URL("../", import.meta.url);

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const result = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: result.code, out: text.decode(result.stdout) + text.decode(result.stderr) };
}

e2eTest(
  `e2e grpc abuse - ${ROUNDS} rounds each from Node and Deno clients: the service never exits`,
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    const port = String(service.grpcPort);
    // Pass 1 mixes every kind of abuse; pass 2 is the one seen to crash a node:http2
    // server on Deno: sessions closed gracefully with 16 unary calls in flight.
    for (let pass = 0; pass < 2; pass++) {
      const [node, deno] = await Promise.all([
        new Deno.Command("node", {
          args: [
            "tests/abuse/grpc_abuse_node.mjs",
            "127.0.0.1",
            port,
            pass === 0 ? ROUNDS : String(3 * Number(ROUNDS)),
          ],
          cwd: ROOT,
          env: pass === 0 ? {} : { ABUSE_ONLY: "0" },
          stdout: "piped",
          stderr: "piped",
        }).output().then((r) => ({
          code: r.code,
          out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
        })),
        run("deno", ["run", "-A", "tests/abuse/grpc_abuse_deno.ts", "127.0.0.1", port, ROUNDS]),
      ]);
      // deno-lint-ignore no-console
      console.log(node.out.trim(), deno.out.trim());
      assert.equal(node.code, 0, node.out);
      assert.equal(deno.code, 0, deno.out);
      const exited = await Promise.race([
        service.exited,
        new Promise((r) => setTimeout(() => r(undefined), 200)),
      ]);
      assert.equal(
        exited,
        undefined,
        `the service is still running after pass ${pass + 1}: ${service.stderrTail()}`,
      );
    }
    const restarts = await serviceMetric(service.httpPort, "sip_signaling_grpc_server_restarts_total");
    // deno-lint-ignore no-console
    console.log(`the TerminateCall process died and was restarted ${restarts} times; the service never`);
    assert.equal(await probeOptions(service.sipPort), 200, "SIP still answers");
    // The agent still ends a real call: the caller gets our BYE.
    const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
    const answer = await waitFor(async () => {
      try {
        return await terminateCall(service.grpcPort, callId, "completed_by_agent");
      } catch {
        return undefined; // the TerminateCall process may be restarting
      }
    }, 10_000);
    assert.equal(answer?.success, true, "TerminateCall ends the call");
    assert.equal((await caller).code, 0, "the caller got our BYE");
    assert.equal(await service.stop(), 0);
  },
);

e2eTest(
  "e2e grpc abuse - the TerminateCall process killed by a signal is started again; calls are untouched",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    const { callId, caller } = await callUpUntilOurBye(service.sipPort, consumer);
    const pidOf = () =>
      service.logs.findLast((r) => String(r.message ?? "").startsWith("TerminateCall served by process"))
        ?.properties as { pid?: number } | undefined;
    const first = pidOf()?.pid;
    assert.ok(first !== undefined, "the process is announced with its pid");
    for (const signal of ["-ABRT", "-KILL"]) {
      const before = pidOf()?.pid;
      await new Deno.Command("kill", { args: [signal, String(before)] }).output();
      const next = await waitFor(() => {
        const pid = pidOf()?.pid;
        return pid !== undefined && pid !== before ? pid : undefined;
      }, 5000);
      assert.ok(next !== undefined, `a new TerminateCall process after ${signal}`);
    }
    assert.equal(await serviceMetric(service.httpPort, "sip_signaling_grpc_server_restarts_total"), 2);
    assert.equal(await probeOptions(service.sipPort), 200, "SIP untouched");
    const answer = await terminateCall(service.grpcPort, callId, "completed_by_agent");
    assert.equal(
      answer.success,
      true,
      "TerminateCall works on the new process, for the call that was up all along",
    );
    assert.equal((await caller).code, 0, "the caller got our BYE");
    assert.equal(await service.stop(), 0);
  },
);
