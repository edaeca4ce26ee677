// Full calls driven by SIPp (tests/sipp/uac_call.xml): the service with its reference
// backends in-process and the real RabbitMQ broker (publisher confirms on), beside a
// minimal Deno UDP responder measured in the same run. Prints, for each, the highest
// rate with zero failed calls and zero unexpected messages, and the INVITE-to-200
// latency median and p99 at 200 calls per second, with ratios.
import { freeTcpPort, freeUdpPort, RABBITMQ_URL, scenarioPath } from "../tests/e2e/harness.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RATES = [200, 500, 600, 700, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000];
const SECONDS_PER_STEP = 4;
const decoder = new TextDecoder();

interface StepResult {
  readonly rate: number;
  readonly successful: number;
  readonly failed: number;
  readonly unexpected: number;
  readonly latenciesMs: number[];
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

async function runStep(port: number, rate: number): Promise<StepResult> {
  const dir = await Deno.makeTempDir({ prefix: "bench-" });
  try {
    const calls = rate * SECONDS_PER_STEP;
    const out = await new Deno.Command("sipp", {
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
        ...(rate === 200 ? ["-trace_msg", "-message_file", `${dir}/messages.log`] : []),
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = decoder.decode(out.stdout);
    const count = (label: string) =>
      Number(new RegExp(`${label}\\s+\\|\\s+\\d+\\s+\\|\\s+(\\d+)`).exec(text)?.[1] ?? "0");
    // Message table rows: name, arrow, Messages, Retrans, Timeout, Unexpected-Msg.
    let unexpected = 0;
    for (const m of text.matchAll(/<----------\s+(?:E-RTD1\s+)?\d+\s+\d+\s+\d+\s+(\d+)/g)) {
      unexpected += Number(m[1]);
    }
    const latenciesMs = rate === 200
      ? latenciesFromTrace(await Deno.readTextFile(`${dir}/messages.log`))
      : [];
    return {
      rate,
      successful: count("Successful call"),
      failed: count("Failed call"),
      unexpected,
      latenciesMs,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

async function ladder(
  name: string,
  port: number,
): Promise<{ clean: number; at200: StepResult | undefined; lines: string[] }> {
  const lines: string[] = [];
  let clean = 0;
  let at200: StepResult | undefined;
  // Warm-up (JIT, gRPC channels, broker connection), not measured.
  await runStep(port, 100);
  await new Promise((res) => setTimeout(res, 1000));
  for (const rate of RATES) {
    const r = await runStep(port, rate);
    if (rate === 200) at200 = r;
    const ok = r.failed === 0 && r.unexpected === 0 && r.successful === rate * SECONDS_PER_STEP;
    lines.push(
      `  ${name.padEnd(18)} ${String(rate).padStart(5)} calls/s: ${r.successful} ok, ${r.failed} failed, ` +
        `${r.unexpected} unexpected` +
        (r.latenciesMs.length === 0
          ? ""
          : `; INVITE->200 median ${quantile(r.latenciesMs, 0.5).toFixed(3)} ms p99 ${
            quantile(r.latenciesMs, 0.99).toFixed(3)
          } ms`),
    );
    if (!ok) break;
    clean = rate;
    await new Promise((res) => setTimeout(res, 1500)); // let dialogs and transactions drain
  }
  return { clean, at200, lines };
}

async function spawn(args: string[], env: Record<string, string>, readyText: string) {
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
  return {
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

export async function* callBench(): AsyncGenerator<string> {
  yield `calls: SIPp uac_call.xml (INVITE, 100, 200, ACK, 100 ms, BYE, 200), ${SECONDS_PER_STEP} s per rate step`;
  const minimalPort = freeUdpPort();
  const minimal = await spawn(
    ["run", "-P=service", "bench/minimal_responder.ts", String(minimalPort)],
    {},
    "ready",
  );
  const base = await ladder("minimal responder", minimalPort);
  await minimal.stop();
  yield* base.lines;

  const sipPort = freeUdpPort();
  const service = await spawn(["run", "-P=service", "main.ts", "--embedded"], {
    SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
    SIP_SIGNALING_SERVICE_SIP_PORT: String(sipPort),
    SIP_SIGNALING_SERVICE_GRPC_PORT: String(freeTcpPort()),
    SIP_SIGNALING_SERVICE_HTTP_PORT: String(freeTcpPort()),
    RABBITMQ_URL,
    ENV: "production",
    NO_COLOR: "1",
  }, "SIP signaling ready");
  const full = await ladder("sip-signaling", sipPort);
  await service.stop();
  yield* full.lines;

  const l = (r: StepResult | undefined, q: number) => (r === undefined ? NaN : quantile(r.latenciesMs, q));
  yield `highest clean rate: sip-signaling ${full.clean} calls/s, minimal responder ${base.clean} calls/s, ratio ${
    (full.clean / base.clean).toFixed(2)
  }`;
  yield `INVITE->200 at 200 calls/s: sip-signaling median ${l(full.at200, 0.5).toFixed(2)} ms p99 ${
    l(full.at200, 0.99).toFixed(2)
  } ms; minimal median ${l(base.at200, 0.5).toFixed(2)} ms p99 ${
    l(base.at200, 0.99).toFixed(2)
  } ms; ratio median ${(l(full.at200, 0.5) / l(base.at200, 0.5)).toFixed(2)}, p99 ${
    (l(full.at200, 0.99) / l(base.at200, 0.99)).toFixed(2)
  }`;
}
