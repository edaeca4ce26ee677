// sipvicious against the running service (-P=service, real backends and broker):
// svmap, svwar with INVITE and OPTIONS, svcrack. Inside the allowlist it stays up and
// reveals no runtime or version; with the allowlist excluding the scanner it sees
// nothing at all, and the drops are counted.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  e2eTest,
  missingPeers,
  probeOptions,
  serviceMetric,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = (await missingPeers()) ??
  (await new Deno.Command("svmap", { args: ["--help"], stdout: "null", stderr: "null" }).output().then(
    () => undefined,
    () => {
      const message = "sipvicious (apt-get install sipvicious)";
      if (Deno.env.get("CI") === "true") throw new Error(`${message} is missing; CI must provide it`);
      return message;
    },
  ));

async function scan(tool: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(tool, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

function scans(port: number): [string, string[]][] {
  const p = String(port);
  return [
    ["svmap", ["127.0.0.1", "-p", p]],
    ["svmap", ["127.0.0.1", "-p", p, "-m", "INVITE"]],
    ["svwar", ["-m", "OPTIONS", "-e", "100-120", "127.0.0.1", "-p", p]],
    ["svwar", ["-m", "INVITE", "-e", "100-120", "127.0.0.1", "-p", p]],
    ["svcrack", ["-u", "100", "-r", "1000-1030", "127.0.0.1", "-p", p]],
  ];
}

e2eTest(
  "e2e scanners - sipvicious inside the allowlist: the service stays up and reveals no version",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using service = await startService(backendsEnv(backends));
    const outputs: string[] = [];
    for (const [tool, args] of scans(service.sipPort)) outputs.push(await scan(tool, args));
    assert.match(outputs[0] ?? "", /sentiric-sip-signaling/, "svmap finds the service by its Server header");
    for (const out of outputs) {
      // IP addresses aside, nothing that looks like a runtime or a version.
      const text = out.replace(/\d+\.\d+\.\d+\.\d+(:\d+)?/g, "<ip>");
      assert.doesNotMatch(text, /deno|v8|node|\d+\.\d+/i, `no runtime or version revealed: ${out}`);
    }
    assert.equal(await probeOptions(service.sipPort), 200, "still answering");
    const idle = await waitFor(async () =>
      (await serviceMetric(service.httpPort, "sip_signaling_calls_in_progress")) === 0
    );
    assert.ok(idle, "no call left behind by the INVITE scan");
    assert.equal(await waitFor(() => backends.ports.allocated.size === 0), true, "no port left allocated");
    assert.equal(await service.stop(), 0);
  },
);

e2eTest(
  "e2e scanners - with the allowlist excluding the scanner, sipvicious sees nothing at all",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using service = await startService({
      ...backendsEnv(backends),
      SIP_SIGNALING_SERVICE_ALLOWED_SOURCES: "10.0.0.0/8, fc00::/7",
    });
    const announced = service.logs.find((r) => String(r.message ?? "").includes("SIP accepted only from"));
    assert.match(
      JSON.stringify(announced),
      /10\.0\.0\.0\/8, fc00::\/7/,
      "the effective list is logged at start",
    );
    for (const [tool, args] of scans(service.sipPort)) {
      const out = await scan(tool, args);
      assert.doesNotMatch(
        out,
        /sentiric|127\.0\.0\.1:\d+\s*\|/,
        `${tool} ${args.join(" ")} saw something: ${out}`,
      );
    }
    assert.equal(
      await probeOptions(service.sipPort, "127.0.0.1", 500),
      undefined,
      "not even OPTIONS is answered",
    );
    const dropped = await serviceMetric(
      service.httpPort,
      'sip_signaling_datagrams_dropped_total{reason="not_allowed"}',
    );
    assert.ok(dropped >= 5, `every scan's datagrams are counted as not_allowed (${dropped})`);
    assert.equal(backends.traceIds.length, 0, "no backend was ever asked");
    assert.equal(await service.stop(), 0);
  },
);
