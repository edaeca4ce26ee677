// Survives a flood: SIPp offers calls far beyond capacity. Excess calls are shed with
// 503 or time out; afterwards nothing is stuck (no call in setup, no dialog, no port
// allocated) and a normal call goes through.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  e2eTest,
  missingPeers,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
} from "./e2e/harness.ts";

const skip = await missingPeers();

function metric(port: number, name: string): Promise<number> {
  return serviceMetric(port, `sip_signaling_${name}`);
}

e2eTest("e2e - a call flood is shed and leaves nothing behind", skip, async () => {
  await using backends = await startReferenceServers();
  await using service = await startService({
    ...backendsEnv(backends),
    SIP_SIGNALING_SERVICE_T1_MS: "50", // ACK timeouts of aborted callers end in 3.2 s
    SIP_SIGNALING_SERVICE_MAX_CALLS_IN_SETUP: "50",
  });
  // 3000 calls offered at 1500/s: far beyond what this machine sustains.
  const flood = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
    "-s",
    "905551112233",
    "-r",
    "1500",
    "-m",
    "3000",
    "-l",
    "3000",
    "-d",
    "50",
    "-timeout",
    "25",
  ]);
  const ok = Number(/Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(flood.stdout)?.[1] ?? "0");
  const shed = await metric(service.httpPort, "calls_shed_total");
  assert.ok(ok > 0, "some calls went through");
  const deadline = Date.now() + 15_000;
  let inSetup = NaN, dialogs = NaN;
  while (Date.now() < deadline) {
    inSetup = await metric(service.httpPort, "calls_in_setup");
    dialogs = await metric(service.httpPort, "active_dialogs");
    if (inSetup === 0 && dialogs === 0 && backends.ports.allocated.size === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const left = `after the flood (${ok} completed, ${shed} shed): ${inSetup} in setup, ${dialogs} dialogs, ` +
    `${backends.ports.allocated.size} ports allocated, ` +
    `${await metric(service.httpPort, "port_release_failures_total")} releases failed, ` +
    `${await metric(service.httpPort, "calls_rejected_total")} calls rejected`;
  assert.equal(inSetup, 0, `no call stuck in setup ${left}`);
  assert.equal(dialogs, 0, `no dialog left ${left}`);
  assert.equal(backends.ports.allocated.size, 0, `every port released ${left}`);
  const after = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
    "-s",
    "905551112233",
    "-d",
    "100",
  ]);
  assert.equal(after.code, 0, `a normal call after the flood: ${after.stdout}`);
  // deno-lint-ignore no-console
  console.log(`flood: ${ok} of 3000 calls completed, ${shed} shed with 503`);
});
