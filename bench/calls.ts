// Full calls driven by SIPp (tests/sipp/uac_call.xml), in the same run:
// - a minimal Deno UDP responder (the baseline);
// - the service with its dialplan and media backends in memory (everything but gRPC);
// - the service as production runs it: the reference backends in a process of their
//   own (bench/backends.ts) over real gRPC, the real RabbitMQ broker with publisher
//   confirms. The backends' and the broker's CPU per call is printed beside ours.
// Prints, for each, every rate step, the highest clean rate (see `isClean`), process
// CPU per call, and the INVITE-to-200 latency median and p99 at 200 calls per second,
// with ratios to the baseline.
import { freeTcpPort, freeUdpPort, RABBITMQ_URL, scenarioPath } from "../tests/e2e/harness.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RATES = [200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000];
const SECONDS_PER_STEP = 4;
const decoder = new TextDecoder();

export interface StepResult {
  readonly rate: number;
  readonly successful: number;
  readonly failed: number;
  readonly unexpected: number;
  /** Requests SIPp sent again because no response came within T1 (500 ms). */
  readonly retransmissions: number;
  /** Calls per second SIPp actually achieved over the step (its cumulative call rate). */
  readonly achievedRate: number;
  readonly latenciesMs: number[];
  /**
   * CPU time (user + system) the measured process and the processes it started (the
   * service's gRPC client and TerminateCall processes) spent per call during the step, ms.
   */
  cpuMsPerCall: number;
  /** The part of it spent by child processes. */
  childCpuMsPerCall: number;
  /** SIPp's CPU per call (it shares the machine's two cores). */
  readonly sippCpuMsPerCall: number;
  /** The CPU per call of each process printed beside (backends, broker, a gateway), by name. */
  neighboursCpuMsPerCall: Record<string, number>;
}

/**
 * CPU time (user + system, all threads) a process has used so far, ms, from Linux
 * /proc in clock ticks of 10 ms. Read through `cat`: Deno wants --allow-all for /proc.
 */
export async function processCpuMs(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stdout: "piped" }).output();
  const fields = decoder.decode(out.stdout).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The processes `pid` started (the service's gRPC client and TerminateCall processes). */
export async function childPids(pid: number): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-P", String(pid)], stdout: "piped" }).output();
  return decoder.decode(out.stdout).split("\n").filter((l) => l !== "").map(Number);
}

/**
 * Clean (the issue's definition, made to hold): every call succeeded, nothing
 * unexpected, and SIPp kept (within 10%) the offered rate. The last part matters:
 * SIPp stops creating calls when its limit of open calls is reached, so an overloaded
 * service can finish every call without a failure, only later (at 1600 offered,
 * 900 achieved with thousands of INVITEs resent).
 */
function isClean(r: StepResult): boolean {
  return r.failed === 0 && r.unexpected === 0 && r.successful === r.rate * SECONDS_PER_STEP &&
    r.achievedRate >= 0.9 * r.rate;
}

/** Clean, and no request had to be resent: every response came within T1 (500 ms). */
function isStrictlyClean(r: StepResult): boolean {
  return isClean(r) && r.retransmissions === 0;
}

/**
 * INVITE-to-200 times from SIPp's message trace, which stamps every message in
 * microseconds (its RTT statistics only have millisecond resolution).
 */
function latenciesFromTrace(trace: string): number[] {
  const sent = new Map<string, number>();
  const out: number[] = [];
  for (const block of `\n${trace}`.split(/\n-{10,} /)) {
    const stamp = /^\d{4}-\d\d-\d\d\s+(\d\d):(\d\d):(\d\d\.\d+)/.exec(block);
    const callId = /\nCall-ID: *(\S+)/i.exec(block)?.[1];
    if (stamp === null || callId === undefined || !/\nCSeq: *\d+ INVITE/i.test(block)) continue;
    const t = (Number(stamp[1]) * 3600 + Number(stamp[2]) * 60 + Number(stamp[3])) * 1000;
    if (/message sent[^\n]*\n\s*INVITE /.test(block) && !sent.has(callId)) sent.set(callId, t);
    else if (/message received[^\n]*\n\s*SIP\/2\.0 200 /.test(block) && sent.has(callId)) {
      out.push(t - (sent.get(callId) as number));
      sent.delete(callId);
    }
  }
  return out;
}

/** How SIPp reaches the service: UDP, or one TCP connection for every call (as a gateway keeps one). */
export type BenchTransport = "udp" | "tcp";

export async function runStep(
  port: number,
  rate: number,
  transport: BenchTransport = "udp",
): Promise<StepResult> {
  const dir = await Deno.makeTempDir({ prefix: "bench-" });
  try {
    const calls = rate * SECONDS_PER_STEP;
    const sipp = new Deno.Command("sipp", {
      args: [
        "-sf",
        scenarioPath("uac_call.xml"),
        `127.0.0.1:${port}`,
        "-i",
        "127.0.0.1",
        "-p",
        String(freeUdpPort()),
        "-s",
        "905551112233",
        "-r",
        String(rate),
        "-m",
        String(calls),
        "-l",
        String(rate * 3),
        "-d",
        "100",
        "-timeout",
        String(SECONDS_PER_STEP + 20),
        "-timeout_error",
        "-nostdin",
        ...(transport === "tcp" ? ["-t", "t1"] : []),
        ...(rate === 200 ? ["-trace_msg", "-message_file", `${dir}/messages.log`] : []),
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = sipp.output();
    // SIPp's own CPU, read while it runs (a reaped process has no /proc entry): the
    // last reading misses at most its final 250 ms, when it only waits for the last BYEs.
    let sippCpuMs = 0;
    let exited = false;
    void output.finally(() => exited = true);
    while (!exited) {
      sippCpuMs = await processCpuMs(sipp.pid).catch(() => sippCpuMs) || sippCpuMs;
      await new Promise((r) => setTimeout(r, 250));
    }
    const out = await output;
    const text = decoder.decode(out.stdout);
    const count = (label: string) =>
      Number(new RegExp(`${label}\\s+\\|\\s+\\d+\\s+\\|\\s+(\\d+)`).exec(text)?.[1] ?? "0");
    // Message table rows: name, arrow, Messages, Retrans, Timeout, Unexpected-Msg.
    let unexpected = 0;
    for (const m of text.matchAll(/<----------\s+(?:E-RTD1\s+)?\d+\s+\d+\s+\d+\s+(\d+)/g)) {
      unexpected += Number(m[1]);
    }
    // Request rows: name, arrow, Messages, Retrans.
    let retransmissions = 0;
    for (const m of text.matchAll(/[A-Z]+ ---------->\s+\d+\s+(\d+)/g)) retransmissions += Number(m[1]);
    const rates = [...text.matchAll(/Call Rate\s+\|\s+[\d.]+ cps\s+\|\s+([\d.]+) cps/g)];
    const achievedRate = Number(rates.at(-1)?.[1] ?? "0");
    const latenciesMs = rate === 200
      ? latenciesFromTrace(await Deno.readTextFile(`${dir}/messages.log`))
      : [];
    return {
      rate,
      successful: count("Successful call"),
      failed: count("Failed call"),
      unexpected,
      retransmissions,
      achievedRate,
      latenciesMs,
      cpuMsPerCall: NaN,
      childCpuMsPerCall: NaN,
      neighboursCpuMsPerCall: {},
      sippCpuMsPerCall: sippCpuMs / calls,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/**
 * Processes beside the measured one whose CPU per call is printed too (the backends, the
 * broker, a gateway). `tree`: its child processes count too (Kamailio's workers, an
 * instance's gRPC client process).
 */
export interface Neighbour {
  readonly name: string;
  readonly pid: number;
  readonly tree?: boolean;
}

async function neighbourCpuMs(n: Neighbour): Promise<number> {
  const pids = n.tree === true ? [n.pid, ...await childPids(n.pid)] : [n.pid];
  return (await Promise.all(pids.map((p) => processCpuMs(p).catch(() => 0)))).reduce((a, b) => a + b, 0);
}

export async function ladder(
  name: string,
  port: number,
  pid: number,
  neighbours: readonly Neighbour[] = [],
  transport: BenchTransport = "udp",
): Promise<LadderResult> {
  const lines: string[] = [];
  let clean = 0;
  let strict = 0;
  let strictSoFar = true;
  let at200: StepResult | undefined;
  let at500: StepResult | undefined;
  const byRate = new Map<number, StepResult>();
  // Warm-up (JIT, gRPC channels, broker connection), not measured: 400 calls at
  // 100/s left the first measured step with optimizing-compiler and GC pauses.
  await runStep(port, 100, transport);
  await runStep(port, 300, transport);
  await new Promise((res) => setTimeout(res, 1000));
  const children = await childPids(pid);
  const childrenCpuMs = async () =>
    (await Promise.all(children.map(processCpuMs))).reduce((a, b) => a + b, 0);
  for (const rate of RATES) {
    const cpuBefore = await processCpuMs(pid);
    const childBefore = await childrenCpuMs();
    const neighboursBefore = await Promise.all(neighbours.map(neighbourCpuMs));
    const r = await runStep(port, rate, transport);
    const calls = rate * SECONDS_PER_STEP;
    r.childCpuMsPerCall = (await childrenCpuMs() - childBefore) / calls;
    r.cpuMsPerCall = (await processCpuMs(pid) - cpuBefore) / calls + r.childCpuMsPerCall;
    const neighboursCpu = await Promise.all(
      neighbours.map(async (n, i) => {
        const perCall = (await neighbourCpuMs(n) - (neighboursBefore[i] as number)) / calls;
        r.neighboursCpuMsPerCall[n.name] = perCall;
        return `${n.name} ${perCall.toFixed(2)}`;
      }),
    );
    if (rate === 200) at200 = r;
    if (rate === 500) at500 = r;
    byRate.set(rate, r);
    const ok = isClean(r);
    lines.push(
      `  ${name.padEnd(18)} ${String(rate).padStart(5)} calls/s: ${r.successful} ok, ${r.failed} failed, ` +
        `${r.unexpected} unexpected, ${r.retransmissions} resent, achieved ${r.achievedRate.toFixed(0)}/s, ` +
        `CPU ${r.cpuMsPerCall.toFixed(2)} ms/call` +
        (children.length === 0 ? "" : ` (${r.childCpuMsPerCall.toFixed(2)} in its child processes)`) +
        ` (beside it: ${[...neighboursCpu, `SIPp ${r.sippCpuMsPerCall.toFixed(2)}`].join(", ")})` +
        (r.latenciesMs.length === 0
          ? ""
          : `; INVITE->200 median ${quantile(r.latenciesMs, 0.5).toFixed(3)} ms p99 ${
            quantile(r.latenciesMs, 0.99).toFixed(3)
          } ms p99.9 ${quantile(r.latenciesMs, 0.999).toFixed(3)} ms`),
    );
    if (!ok) break;
    clean = rate;
    strictSoFar &&= isStrictlyClean(r);
    if (strictSoFar) strict = rate;
    await new Promise((res) => setTimeout(res, 1500)); // let dialogs and transactions drain
  }
  return { clean, strict, at200, at500, byRate, lines };
}

export async function spawn(
  args: string[],
  env: Record<string, string>,
  readyText: string,
): Promise<Pick<Spawned, "pid" | "stop">> {
  const started = await spawnReading(args, env, readyText);
  return { pid: started.pid, stop: started.stop };
}

/** Spawns `deno args` and waits for `readyText` on stdout; `line` is the line that held it. */
/** A process the bench started: its pid, the line that said it was ready, and how to stop it. */
export interface Spawned {
  readonly pid: number;
  readonly line: string;
  stop(): Promise<void>;
}

export async function spawnReading(
  args: string[],
  env: Record<string, string>,
  readyText: string,
): Promise<Spawned> {
  const child = new Deno.Command("deno", {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  })
    .spawn();
  const reader = child.stdout.getReader();
  let seen = "";
  const deadline = Date.now() + 20_000;
  while (!seen.includes(readyText) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += decoder.decode(value);
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  const drain = (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  const line = seen.split("\n").find((l) => l.includes(readyText)) ?? "";
  return {
    pid: child.pid,
    line,
    async stop() {
      // SIGTERM drains: calls a failed step left up would hold it for the drain timeout;
      // SIGINT after 5 s ends the drain at once.
      child.kill("SIGTERM");
      const interrupt = setTimeout(() => {
        try {
          child.kill("SIGINT");
        } catch {
          // Gone.
        }
      }, 5000);
      await child.status;
      clearTimeout(interrupt);
      await drain;
    },
  };
}

/** RabbitMQ's Erlang VM on this host, whose CPU per call is printed beside ours. */
export async function brokerPid(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("pgrep", { args: ["-o", "beam.smp"], stdout: "piped" }).output();
    const pid = Number(decoder.decode(out.stdout).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Which ladders to run: all by default. "full" runs the service over UDP, "tcp" over TCP. */
export type CallBenchPart = "minimal" | "in-memory" | "full" | "tcp";

export interface LadderResult {
  /** Highest clean rate (NaN when the ladder was not run). */
  readonly clean: number;
  /** Highest rate up to which every step was also free of retransmissions. */
  readonly strict: number;
  readonly at200: StepResult | undefined;
  /** CPU per call is read here: at 200/s a process's fixed costs weigh on it. */
  readonly at500: StepResult | undefined;
  /** Every step run, by offered rate. */
  readonly byRate: ReadonlyMap<number, StepResult>;
  readonly lines: string[];
}

const NOT_RUN: LadderResult = {
  clean: NaN,
  strict: NaN,
  at200: undefined,
  at500: undefined,
  byRate: new Map(),
  lines: [],
};

export async function* callBench(
  parts: readonly CallBenchPart[] = ["minimal", "in-memory", "full", "tcp"],
): AsyncGenerator<string> {
  yield `calls: SIPp uac_call.xml (INVITE, 100, 200, ACK, 100 ms, BYE, 200), ${SECONDS_PER_STEP} s per rate step`;
  // Deno cannot set SO_RCVBUF on a UDP socket, so the kernel default decides how long
  // a pause of the event loop can be before datagrams are dropped (and resent).
  const rcvbuf = decoder.decode(
    (await new Deno.Command("cat", { args: ["/proc/sys/net/core/rmem_default"], stdout: "piped" }).output())
      .stdout,
  ).trim();
  yield `  UDP receive buffer (net.core.rmem_default): ${rcvbuf} bytes`;
  let base = NOT_RUN;
  if (parts.includes("minimal")) {
    const minimalPort = freeUdpPort();
    const minimal = await spawn(
      ["run", "-P=service", "bench/minimal_responder.ts", String(minimalPort)],
      {},
      "ready",
    );
    base = await ladder("minimal responder", minimalPort, minimal.pid);
    await minimal.stop();
    yield* base.lines;
  }

  const serviceEnv = () => ({
    SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
    SIP_SIGNALING_SERVICE_SIP_PORT: String(freeUdpPort()),
    SIP_SIGNALING_SERVICE_GRPC_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_HTTP_PORT: String(freeTcpPort()),
    RABBITMQ_URL,
    ENV: "production",
    NO_COLOR: "1",
  });
  // The same service with its dialplan and media backends in memory: everything but gRPC.
  let noGrpc = NOT_RUN;
  if (parts.includes("in-memory")) {
    const inMemoryEnv = serviceEnv();
    const inMemory = await spawn(
      ["run", "-P=service", "bench/service_in_memory.ts"],
      inMemoryEnv,
      "SIP signaling ready",
    );
    noGrpc = await ladder(
      "in-memory backends",
      Number(inMemoryEnv.SIP_SIGNALING_SERVICE_SIP_PORT),
      inMemory.pid,
    );
    await inMemory.stop();
    yield* noGrpc.lines;
  }

  let full = NOT_RUN;
  let tcp = NOT_RUN;
  if (parts.includes("full") || parts.includes("tcp")) {
    // The backends in a process of their own, as in production.
    const backends = await spawnReading(["run", "-P=bench", "bench/backends.ts"], {}, "ready ");
    const urls = JSON.parse(backends.line.slice(backends.line.indexOf("{"))) as Record<string, string>;
    const fullEnv = {
      ...serviceEnv(),
      SIP_SIGNALING_SERVICE_PUBLIC_IP: "127.0.0.1",
      DIALPLAN_SERVICE_TARGET_GRPC_URL: urls.dialplanUrl as string,
      MEDIA_SERVICE_TARGET_GRPC_URL: urls.mediaUrl as string,
      USER_SERVICE_TARGET_GRPC_URL: urls.userUrl as string,
    };
    const service = await spawn(
      ["run", "-P=service", "main.ts"],
      fullEnv,
      "SIP signaling ready",
    );
    const broker = await brokerPid();
    const neighbours = [
      { name: "backends", pid: backends.pid },
      ...(broker === undefined ? [] : [{ name: "broker", pid: broker }]),
    ];
    const port = Number(fullEnv.SIP_SIGNALING_SERVICE_SIP_PORT);
    if (parts.includes("full")) {
      full = await ladder("sip-signaling", port, service.pid, neighbours);
      yield* full.lines;
    }
    // The same service, same run, over TCP: SIPp keeps one connection for every call.
    if (parts.includes("tcp")) {
      tcp = await ladder("sip-signaling tcp", port, service.pid, neighbours, "tcp");
      yield* tcp.lines;
    }
    await service.stop();
    await backends.stop();
  }

  const l = (r: StepResult | undefined, q: number) => (r === undefined ? NaN : quantile(r.latenciesMs, q));
  const rates = (pick: (r: LadderResult) => number, what: string) =>
    `${what}: sip-signaling ${pick(full)} calls/s, with in-memory backends ${pick(noGrpc)} calls/s, ` +
    `minimal responder ${pick(base)} calls/s; ratios ${(pick(full) / pick(base)).toFixed(2)} and ${
      (pick(noGrpc) / pick(base)).toFixed(2)
    }`;
  yield rates((r) => r.clean, "highest clean rate (no failed call, nothing unexpected, offered rate kept)");
  yield rates((r) => r.strict, "  and with no request resent either");
  const cpu = (r: StepResult | undefined) => r?.cpuMsPerCall ?? NaN;
  yield `over TCP (SIPp -t t1, one connection), the same service in the same run: highest clean rate ${tcp.clean} ` +
    `calls/s against ${full.clean} over UDP (ratio ${
      (tcp.clean / full.clean).toFixed(2)
    }); CPU per call at ` +
    `500 calls/s ${cpu(tcp.at500).toFixed(2)} ms against ${cpu(full.at500).toFixed(2)} ms (ratio ${
      (cpu(tcp.at500) / cpu(full.at500)).toFixed(2)
    }); INVITE->200 at 200 calls/s median ${l(tcp.at200, 0.5).toFixed(2)} ms p99 ${
      l(tcp.at200, 0.99).toFixed(2)
    } ms`;
  yield `process CPU per call at 500 calls/s: sip-signaling ${cpu(full.at500).toFixed(2)} ms ` +
    `(backends in their own process), with in-memory backends ${cpu(noGrpc.at500).toFixed(2)} ms, ` +
    `minimal responder ${cpu(base.at500).toFixed(2)} ms; ratios ${
      (cpu(full.at500) / cpu(base.at500)).toFixed(1)
    } and ${(cpu(noGrpc.at500) / cpu(base.at500)).toFixed(1)}`;
  const tail = (r: StepResult | undefined) =>
    `median ${l(r, 0.5).toFixed(2)} ms p99 ${l(r, 0.99).toFixed(2)} ms p99.9 ${l(r, 0.999).toFixed(2)} ms`;
  yield `INVITE->200 at 200 calls/s (${full.at200?.latenciesMs.length ?? 0} calls): sip-signaling ${
    tail(full.at200)
  }; minimal ${tail(base.at200)}; ratios ${(l(full.at200, 0.5) / l(base.at200, 0.5)).toFixed(1)}, ${
    (l(full.at200, 0.99) / l(base.at200, 0.99)).toFixed(1)
  } and ${(l(full.at200, 0.999) / l(base.at200, 0.999)).toFixed(1)}`;
}
