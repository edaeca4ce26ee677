// deno task profile [--rate=500] [--seconds=10] [--out=FILE.cpuprofile]
// The service as the full-call bench runs it (reference backends in their own process,
// the real broker), under SIPp's uac_call.xml at a fixed rate, sampled by V8's
// profiler through the inspector (Deno has no --cpu-prof). Prints self time by
// package or folder and the hottest functions; `--out` keeps the .cpuprofile for
// Chrome DevTools.
// deno-lint-ignore-file no-console
import { freeTcpPort, freeUdpPort, RABBITMQ_URL, scenarioPath } from "../tests/e2e/harness.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const arg = (name: string, fallback: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const rate = Number(arg("rate", "500"));
const seconds = Number(arg("seconds", "10"));
const out = arg("out", "");
/** `load` (default): samples while SIPp runs; `expiry`: the 40 s after it, as the calls' transactions time out. */
const phase = arg("phase", "load");

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code comes from: an npm package, a project folder, the runtime, or V8 itself. */
function origin(url: string, fn: string): string {
  if (url === "") return fn.startsWith("(") ? fn : "(native)";
  const npm = /registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\//.exec(url) ??
    /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith("file://")) {
    const rel = url.slice(`file://${ROOT}`.length);
    return rel.split("/").slice(0, rel.startsWith("proto/") ? 2 : 1).join("/");
  }
  if (url.startsWith("ext:deno_node") || url.startsWith("node:")) return "node: compat";
  return url.startsWith("ext:") ? "deno runtime" : url;
}

function summarize(profile: Profile): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byOrigin = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    const o = origin(frame.url, frame.functionName);
    byOrigin.set(o, (byOrigin.get(o) ?? 0) + us);
    const file = frame.url.split("/").at(-1) ?? "";
    const f = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    byFunction.set(f, (byFunction.get(f) ?? 0) + us);
  }
  const pct = (us: number) => `${(100 * us / total).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `  ${pct(us)}  ${k}`);
  return [
    `self time by origin (${(total / 1e6).toFixed(2)} s sampled):`,
    ...top(byOrigin, 25),
    "hottest functions (self time):",
    ...top(byFunction, 40),
  ];
}

/** One Chrome DevTools Protocol session over the inspector's WebSocket. */
async function devtools(port: number) {
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 100 && targets.length === 0; i++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ws = new WebSocket((targets[0] as { webSocketDebuggerUrl: string }).webSocketDebuggerUrl);
  await new Promise((r) => ws.onopen = r);
  let next = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    waiting.get(msg.id)?.(msg.result);
    waiting.delete(msg.id);
  };
  return {
    send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    close: () => ws.close(),
  };
}

async function readyLine(child: Deno.ChildProcess, text: string): Promise<string> {
  const reader = child.stdout.getReader();
  let seen = "";
  while (!seen.includes(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`exited before "${text}"`);
    seen += new TextDecoder().decode(value);
  }
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  return seen.split("\n").find((l) => l.includes(text)) ?? "";
}

const backends = new Deno.Command("deno", {
  args: ["run", "-P=bench", "bench/backends.ts"],
  cwd: ROOT,
  stdout: "piped",
  stderr: "null",
}).spawn();
const urls = JSON.parse((await readyLine(backends, "ready ")).replace(/^.*?ready /, ""));
const sipPort = freeUdpPort();
const inspectPort = freeTcpPort();
const service = new Deno.Command("deno", {
  args: ["run", `--inspect=127.0.0.1:${inspectPort}`, "-P=service", "main.ts"],
  cwd: ROOT,
  env: {
    SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
    SIP_SIGNALING_SERVICE_SIP_PORT: String(sipPort),
    SIP_SIGNALING_SERVICE_GRPC_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_HTTP_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_PUBLIC_IP: "127.0.0.1",
    DIALPLAN_SERVICE_TARGET_GRPC_URL: urls.dialplanUrl,
    MEDIA_SERVICE_TARGET_GRPC_URL: urls.mediaUrl,
    USER_SERVICE_TARGET_GRPC_URL: urls.userUrl,
    RABBITMQ_URL,
    ENV: "production",
    NO_COLOR: "1",
  },
  stdout: "piped",
  stderr: "null",
}).spawn();
await readyLine(service, "SIP signaling ready");
const sipp = (r: number, calls: number) =>
  new Deno.Command("sipp", {
    args: [
      ...["-sf", scenarioPath("uac_call.xml"), `127.0.0.1:${sipPort}`, "-i", "127.0.0.1"],
      ...["-p", String(freeUdpPort()), "-s", "905551112233", "-r", String(r), "-m", String(calls)],
      ...["-l", String(r * 3), "-d", "100", "-timeout", String(seconds + 30), "-nostdin"],
    ],
    stdout: "null",
    stderr: "null",
  }).output();
await sipp(200, 600); // warm-up: JIT, channels, the broker connection
const cdp = await devtools(inspectPort);
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 250 });
if (phase === "load") {
  await cdp.send("Profiler.start");
  await sipp(rate, rate * seconds);
} else {
  await sipp(rate, rate * seconds);
  await cdp.send("Profiler.start");
  await new Promise((r) => setTimeout(r, 40_000));
}
const { profile } = await cdp.send("Profiler.stop") as { profile: Profile };
cdp.close();
service.kill("SIGINT");
await service.status;
backends.kill("SIGTERM");
await backends.status;
if (out !== "") await Deno.writeTextFile(out, JSON.stringify(profile));
console.log(
  `profile: sip-signaling ${
    phase === "load" ? "at" : "in the 40 s after"
  } ${rate} calls/s for ${seconds} s ` +
    "(SIPp uac_call.xml)",
);
for (const line of summarize(profile)) console.log(line);
