// Scale-out (deno task bench --calls=scaleout): in one run, the clean call rate of one
// instance on its own, of the same instance behind the gateway (Kamailio with
// deploy/kamailio/kamailio.cfg), and of two instances behind it, with the gateway's
// CPU per call (all its processes). The backends run in a process of their own and
// events go to the real broker, as in bench/calls.ts. On 2 cores a second instance
// mostly shows what the gateway costs: the cores are already shared by SIPp, the
// backends, the broker and the gateway.
import { freeTcpPort, freeUdpPort, RABBITMQ_URL } from "../tests/e2e/harness.ts";
import { startGateway } from "../tests/e2e/gateway.ts";
import { brokerPid, ladder, type LadderResult, type Neighbour, spawn, spawnReading } from "./calls.ts";

function instanceEnv(urls: Record<string, string>): Record<string, string> {
  return {
    SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
    SIP_SIGNALING_SERVICE_SIP_PORT: String(freeUdpPort()),
    SIP_SIGNALING_SERVICE_GRPC_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_HTTP_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_PUBLIC_IP: "127.0.0.1",
    DIALPLAN_SERVICE_TARGET_GRPC_URL: urls.dialplanUrl as string,
    MEDIA_SERVICE_TARGET_GRPC_URL: urls.mediaUrl as string,
    USER_SERVICE_TARGET_GRPC_URL: urls.userUrl as string,
    RABBITMQ_URL,
    ENV: "production",
    NO_COLOR: "1",
  };
}

export async function* scaleoutBench(): AsyncGenerator<string> {
  yield "scale-out: one instance alone, behind Kamailio, and two behind Kamailio (SIPp uac_call.xml over UDP)";
  const backends = await spawnReading(["run", "-P=bench", "bench/backends.ts"], {}, "ready ");
  const urls = JSON.parse(backends.line.slice(backends.line.indexOf("{"))) as Record<string, string>;
  const envA = instanceEnv(urls);
  const envB = instanceEnv(urls);
  const a = await spawn(["run", "-P=service", "main.ts"], envA, "SIP signaling ready");
  const b = await spawn(["run", "-P=service", "main.ts"], envB, "SIP signaling ready");
  const portA = Number(envA.SIP_SIGNALING_SERVICE_SIP_PORT);
  const portB = Number(envB.SIP_SIGNALING_SERVICE_SIP_PORT);
  const broker = await brokerPid();
  const shared: Neighbour[] = [
    { name: "backends", pid: backends.pid },
    ...(broker === undefined ? [] : [{ name: "broker", pid: broker }]),
  ];
  let alone: LadderResult;
  let one: LadderResult;
  let two: LadderResult;
  try {
    alone = await ladder("one instance", portA, a.pid, shared);
    yield* alone.lines;
    const gw1 = await startGateway([portA], { pingInterval: 2 });
    try {
      one = await ladder("1 behind kamailio", gw1.port, a.pid, [
        { name: "kamailio", pid: gw1.pid, tree: true },
        ...shared,
      ]);
      yield* one.lines;
    } finally {
      await gw1.stop();
    }
    const gw2 = await startGateway([portA, portB], { pingInterval: 2 });
    try {
      two = await ladder("2 behind kamailio", gw2.port, a.pid, [
        { name: "instance B", pid: b.pid, tree: true },
        { name: "kamailio", pid: gw2.pid, tree: true },
        ...shared,
      ]);
      yield* two.lines;
    } finally {
      await gw2.stop();
    }
  } finally {
    await a.stop();
    await b.stop();
    await backends.stop();
  }
  // CPU is compared at the highest rate all three ran clean (at lower rates fixed costs weigh more).
  const rate = Math.min(alone.clean, one.clean, two.clean);
  const at = (r: LadderResult) => r.byRate.get(rate);
  const kamailio = (r: LadderResult) => at(r)?.neighboursCpuMsPerCall.kamailio ?? NaN;
  const service = (r: LadderResult) =>
    (at(r)?.cpuMsPerCall ?? NaN) + (at(r)?.neighboursCpuMsPerCall["instance B"] ?? 0);
  yield `highest clean rate: one instance alone ${alone.clean} calls/s, behind Kamailio ${one.clean}, two behind ` +
    `Kamailio ${two.clean}; ratios to alone ${(one.clean / alone.clean).toFixed(2)} and ${
      (two.clean / alone.clean).toFixed(2)
    }`;
  yield `at ${rate} calls/s: Kamailio CPU per call ${kamailio(one).toFixed(2)} ms (one instance behind it), ${
    kamailio(two).toFixed(2)
  } ms (two); the instances' CPU per call ${service(alone).toFixed(2)} ms alone, ${
    service(one).toFixed(2)
  } ms behind Kamailio, ${service(two).toFixed(2)} ms for two (ratio ${
    (service(two) / service(alone)).toFixed(2)
  })`;
}
