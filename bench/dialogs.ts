// Dialogs at scale (`deno task bench --calls=dialogs`): the service as production runs
// it (backends in their own process, the real broker), SIPp holding 100,000 calls up.
// Prints RSS per established dialog, the CPU of a new call with ~10 and with 100,000
// dialogs up, and the RSS a minute after the load is gone against the RSS after start.
// A minimal Deno UDP responder's RSS is the baseline of the same run.
import { freeTcpPort, freeUdpPort, RABBITMQ_URL, scenarioPath } from "../tests/e2e/harness.ts";
import { childPids, processCpuMs, runStep, spawnReading } from "./calls.ts";

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident memory of a process, bytes (Deno wants --allow-all for /proc: read through `cat`). */
async function rssBytes(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped" }).output();
  return Number(/VmRSS:\s+(\d+) kB/.exec(decoder.decode(out.stdout))?.[1] ?? NaN) * 1024;
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** CPU (service and its child processes) per call of a 4 s step at 200 calls/s, ms. */
async function cpuPerNewCall(pid: number, sipPort: number): Promise<{ ms: number; ok: boolean }> {
  const tree = async () => {
    const all = [pid, ...await childPids(pid)];
    return (await Promise.all(all.map(processCpuMs))).reduce((a, b) => a + b, 0);
  };
  const before = await tree();
  const step = await runStep(sipPort, 200);
  return { ms: (await tree() - before) / (200 * 4), ok: step.failed === 0 && step.successful === 800 };
}

export async function* dialogBench(dialogs = 100_000, rate = 800): AsyncGenerator<string> {
  yield `dialogs: ${dialogs} calls held up by SIPp (INVITE, 200, ACK, then a pause), set up at ${rate}/s`;
  const minimalPort = freeUdpPort();
  const minimal = await spawnReading(
    ["run", "-P=service", "bench/minimal_responder.ts", String(minimalPort)],
    {},
    "ready",
  );
  await sleep(1000);
  const minimalRss = await rssBytes(minimal.pid);
  await minimal.stop();

  const backends = await spawnReading(["run", "-P=bench", "bench/backends.ts"], {}, "ready ");
  const urls = JSON.parse(backends.line.slice(backends.line.indexOf("{"))) as Record<string, string>;
  const sipPort = freeUdpPort();
  const httpPort = freeTcpPort();
  const service = await spawnReading(["run", "-P=service", "main.ts"], {
    SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
    SIP_SIGNALING_SERVICE_SIP_PORT: String(sipPort),
    SIP_SIGNALING_SERVICE_GRPC_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_HTTP_PORT: String(httpPort),
    SIP_SIGNALING_SERVICE_PUBLIC_IP: "127.0.0.1",
    SIP_SIGNALING_SERVICE_MAX_CALLS: String(dialogs * 2),
    DIALPLAN_SERVICE_TARGET_GRPC_URL: urls.dialplanUrl as string,
    MEDIA_SERVICE_TARGET_GRPC_URL: urls.mediaUrl as string,
    RABBITMQ_URL,
    ENV: "production",
    NO_COLOR: "1",
  }, "SIP signaling ready");
  try {
    // Warm-up (JIT, channels, broker), then the process's own memory once idle again.
    await runStep(sipPort, 100);
    await sleep(40_000); // the warm-up's transactions wait out their 32 s
    const startRss = await rssBytes(service.pid);
    const few = await cpuPerNewCall(service.pid, sipPort);
    await sleep(35_000);

    // The holder: every call pauses long enough for all to be up, and for the set-up
    // transactions to end (32 s), before the first BYE.
    const rampS = dialogs / rate;
    const holdMs = Math.ceil((rampS + 45) * 1000);
    const holder = new Deno.Command("sipp", {
      args: [
        ...["-sf", scenarioPath("uac_call.xml"), `127.0.0.1:${sipPort}`, "-i", "127.0.0.1"],
        ...["-p", String(freeUdpPort()), "-s", "905551112233", "-r", String(rate), "-m", String(dialogs)],
        ...["-l", String(dialogs + 1), "-d", String(holdMs), "-nostdin", "-timeout", String(rampS * 2 + 200)],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const upAt = Date.now() + rampS * 1000;
    let up = 0;
    while (
      Date.now() < upAt + 10_000 && (up = await metric(httpPort, "sip_signaling_active_dialogs")) < dialogs
    ) {
      await sleep(1000);
    }
    await sleep(34_000); // the last calls' INVITE transactions end
    up = await metric(httpPort, "sip_signaling_active_dialogs");
    const fullRss = await rssBytes(service.pid);
    const childRss = (await Promise.all((await childPids(service.pid)).map(rssBytes))).reduce(
      (a, b) => a + b,
      0,
    );
    const many = await cpuPerNewCall(service.pid, sipPort);
    const held = await holder;
    const holderOk = / Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(decoder.decode(held.stdout))?.[1];
    await sleep(60_000);
    const afterRss = await rssBytes(service.pid);
    const perDialog = (fullRss - startRss) / up;
    yield `  dialogs up ${up} (SIPp: ${holderOk ?? "?"} of ${dialogs} calls completed with their BYE)`;
    yield `  RSS of the service: ${MiB(startRss)} after start, ${MiB(fullRss)} with ${up} dialogs up ` +
      `(${(perDialog / 1024).toFixed(1)} KB per dialog), ${
        MiB(afterRss)
      } a minute after the load; its child ` +
      `processes ${MiB(childRss)}; minimal responder ${MiB(minimalRss)}`;
    yield `  RSS a minute after the load / after start: ${
      (afterRss / startRss).toFixed(2)
    }; with ${up} dialogs ` +
      `/ minimal responder: ${(fullRss / minimalRss).toFixed(1)}`;
    yield `  CPU per new call (200 calls/s for 4 s): ${few.ms.toFixed(2)} ms with ~10 dialogs up${
      few.ok ? "" : " (calls failed)"
    }, ${many.ms.toFixed(2)} ms with ${up} up${many.ok ? "" : " (calls failed)"}; ratio ${
      (many.ms / few.ms).toFixed(2)
    }`;
  } finally {
    await service.stop();
    await backends.stop();
  }
}
