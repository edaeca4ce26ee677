// End-to-end harness: the service as a subprocess under the exact permission set
// the compile task uses (-P=service), SIPp as the caller, reference backends in this
// process (so tests can inspect the port pool), and a real RabbitMQ consumer.
import { Buffer } from "node:buffer";
import amqp from "amqplib";
import * as grpc from "@grpc/grpc-js";
import { SipSignalingServiceClient } from "../../proto/gen/sentiric/sip/v1/signaling.ts";
import { EVENTS_EXCHANGE } from "../../orchestration/events.ts";

export const RABBITMQ_URL = Deno.env.get("TEST_RABBITMQ_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();

async function toolWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

async function brokerWorks(): Promise<boolean> {
  try {
    const c = await amqp.connect(RABBITMQ_URL);
    await c.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the end-to-end tests cannot run here, or undefined when they can. Under CI=true
 * a missing peer is a failure, never a skip.
 */
export async function missingPeers(): Promise<string | undefined> {
  const missing: string[] = [];
  if (!(await toolWorks("sipp", ["-v"]))) missing.push("SIPp (apt-get install sip-tester)");
  if (!(await brokerWorks())) missing.push(`RabbitMQ at ${RABBITMQ_URL.replace(/:[^:@/]*@/, ":***@")}`);
  if (missing.length === 0) return undefined;
  const message = `end-to-end tests need ${missing.join(" and ")}`;
  if (Deno.env.get("CI") === "true") throw new Error(`${message}; CI must provide them`);
  // deno-lint-ignore no-console
  console.warn(`SKIPPED: ${message}`);
  return message;
}

/**
 * An end-to-end test: ignored with the reason `missingPeers()` gave (a failure under
 * CI), and without op/resource sanitizers (subprocesses and sockets outlive steps).
 */
export function e2eTest(
  name: string,
  skip: string | undefined,
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  Deno.test({ name, ignore: skip !== undefined, sanitizeOps: false, sanitizeResources: false }, fn);
}

export function freeTcpPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A port free for UDP and for TCP (SIP listens on both at one port). */
export function freeUdpPort(hostname = "127.0.0.1"): number {
  for (;;) {
    const s = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    const port = (s.addr as Deno.NetAddr).port;
    s.close();
    try {
      Deno.listen({ hostname, port }).close();
      return port;
    } catch {
      // Taken for TCP: another.
    }
  }
}

/** One value from the service's /metrics (Prometheus text), by its full name; NaN if absent. */
export async function serviceMetric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return Number(new RegExp(`^${escaped} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

/** Service environment for backends started by the test, and the real broker. */
export function backendsEnv(
  backends: { readonly dialplanUrl: string; readonly mediaUrl: string; readonly userUrl: string },
): Record<string, string> {
  return {
    DIALPLAN_SERVICE_TARGET_GRPC_URL: backends.dialplanUrl,
    MEDIA_SERVICE_TARGET_GRPC_URL: backends.mediaUrl,
    USER_SERVICE_TARGET_GRPC_URL: backends.userUrl,
    RABBITMQ_URL,
  };
}

export interface RunningService extends AsyncDisposable {
  readonly sipPort: number;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** JSON log records printed so far. */
  readonly logs: Record<string, unknown>[];
  /** The last 64 KiB the process wrote to stderr (a crash's report). */
  stderrTail(): string;
  /** SIGTERM (escalating past `graceMs`, default 15 s); resolves to the exit code. */
  stop(graceMs?: number): Promise<number>;
  /** Sends a signal and returns at once. */
  signal(signal: Deno.Signal): void;
  /** The exit code, once the process has exited. */
  readonly exited: Promise<number>;
  /** The process id (to watch its memory). */
  readonly pid: number;
}

/** Starts `deno run -P=service main.ts` with `env` and waits until it is ready. */
export async function startService(
  env: Record<string, string>,
  args: string[] = [],
): Promise<RunningService> {
  const sipPort = freeUdpPort(env.SIP_SIGNALING_SERVICE_LISTEN_ADDRESS ?? "127.0.0.1");
  const grpcPort = freeTcpPort();
  const httpPort = freeTcpPort();
  const child = new Deno.Command("deno", {
    args: ["run", "-P=service", "main.ts", ...args],
    cwd: ROOT,
    env: {
      SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: "127.0.0.1",
      SIP_SIGNALING_SERVICE_SIP_PORT: String(sipPort),
      SIP_SIGNALING_SERVICE_GRPC_PORT: String(grpcPort),
      SIP_SIGNALING_SERVICE_HTTP_PORT: String(httpPort),
      SIP_SIGNALING_SERVICE_PUBLIC_IP: "127.0.0.1",
      ENV: "production",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  let ready: () => void = () => {};
  const readyPromise = new Promise<void>((r) => (ready = r));
  const pump = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const record = JSON.parse(line) as Record<string, unknown>;
          logs.push(record);
          if (String(record.message ?? "").includes("SIP signaling ready")) ready();
        } catch {
          logs.push({ raw: line }); // Text logs (ENV=development or --embedded).
          if (line.includes("SIP signaling ready")) ready();
        }
      }
    }
  })();
  let errText = "";
  const stderr = child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        errText = (errText + decoder.decode(chunk, { stream: true })).slice(-65536);
      },
    }),
  );
  const exited = child.status.then((s) => {
    ready();
    return s;
  });
  await Promise.race([readyPromise, new Promise((r) => setTimeout(r, 20_000))]);
  let stopped = false;
  /**
   * SIGTERM, then the exit code once stdout and stderr are drained. A drain waits for
   * calls up to end, so a test that failed with one up would hang: past `graceMs` the
   * drain is cut short with SIGINT, and past 5 s more the process is killed.
   */
  const stop = async (graceMs = 15_000): Promise<number> => {
    const send = (signal: Deno.Signal) => {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    if (!stopped) {
      stopped = true;
      send("SIGTERM");
      const escalate = setTimeout(() => {
        send("SIGINT");
        const kill = setTimeout(() => send("SIGKILL"), 5000);
        void exited.finally(() => clearTimeout(kill));
      }, graceMs);
      void exited.finally(() => clearTimeout(escalate));
    }
    const status = await exited;
    await pump;
    await stderr;
    return status.code;
  };
  if (!logs.some((r) => String(r.message ?? r.raw ?? "").includes("SIP signaling ready"))) {
    await stop();
    throw new Error(`service did not start: ${JSON.stringify(logs.slice(-5))}`);
  }
  return {
    sipPort,
    grpcPort,
    httpPort,
    logs,
    stop,
    stderrTail: () => errText,
    signal(signal: Deno.Signal) {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    },
    exited: exited.then((s) => s.code),
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

export interface SippResult {
  readonly code: number;
  readonly stdout: string;
  readonly log: string;
  /** SIPp's message trace, when run with -trace_msg. */
  readonly messages: string;
}

/** Runs one SIPp scenario against 127.0.0.1:`port`; bounded by -timeout. */
export async function sipp(
  scenario: string,
  port: number,
  args: string[] = [],
  host = "127.0.0.1",
): Promise<SippResult> {
  const dir = await Deno.makeTempDir({ prefix: "sipp-" });
  try {
    const logFile = `${dir}/log.txt`;
    const out = await new Deno.Command("sipp", {
      args: [
        "-sf",
        scenario,
        host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`,
        "-i",
        host,
        "-p",
        String(freeUdpPort(host)),
        "-m",
        "1",
        "-timeout",
        "20",
        "-timeout_error",
        "-trace_logs",
        "-log_file",
        logFile,
        "-message_file",
        `${dir}/messages.txt`,
        "-nostdin",
        ...args,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    let log = "";
    try {
      log = await Deno.readTextFile(logFile);
    } catch {
      // No log lines written.
    }
    let messages = "";
    try {
      messages = await Deno.readTextFile(`${dir}/messages.txt`);
    } catch {
      // Not traced.
    }
    return { code: out.code, stdout: decoder.decode(out.stdout) + decoder.decode(out.stderr), log, messages };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a scenario from a template in tests/sipp with placeholders replaced. */
export async function scenarioFrom(template: string, values: Record<string, string>): Promise<string> {
  let text = await Deno.readTextFile(new URL(`../sipp/${template}`, import.meta.url));
  for (const [k, v] of Object.entries(values)) text = text.replaceAll(`__${k}__`, v);
  const file = await Deno.makeTempFile({ suffix: ".xml" });
  await Deno.writeTextFile(file, text);
  return file;
}

export function scenarioPath(name: string): string {
  return new URL(`../sipp/${name}`, import.meta.url).pathname;
}

export interface ConsumedEvent {
  readonly routingKey: string;
  readonly properties: amqp.MessageProperties;
  readonly body: Record<string, unknown>;
}

/** A consumer bound to `call.#` on the platform exchange, as the agent side binds. */
export class EventConsumer implements AsyncDisposable {
  readonly events: ConsumedEvent[] = [];
  #connection: amqp.ChannelModel;

  private constructor(connection: amqp.ChannelModel) {
    this.#connection = connection;
  }

  static async start(bindingKey = "call.#"): Promise<EventConsumer> {
    const connection = await amqp.connect(RABBITMQ_URL);
    const consumer = new EventConsumer(connection);
    const channel = await connection.createChannel();
    await channel.assertExchange(EVENTS_EXCHANGE, "topic", { durable: true });
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, EVENTS_EXCHANGE, bindingKey);
    await channel.consume(queue, (msg) => {
      if (msg === null) return;
      consumer.events.push({
        routingKey: msg.fields.routingKey,
        properties: msg.properties,
        body: JSON.parse(Buffer.from(msg.content).toString("utf8")),
      });
    }, { noAck: true });
    return consumer;
  }

  forCall(callId: string): ConsumedEvent[] {
    return this.events.filter((e) => e.body.callId === callId);
  }

  async close(): Promise<void> {
    await this.#connection.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Sends one OPTIONS outside a dialog from a fresh socket on `fromHost` and returns the
 * final status, or undefined when nothing came back within `ms` (a dropped request).
 */
export async function probeOptions(
  port: number,
  fromHost = "127.0.0.1",
  ms = 1000,
): Promise<number | undefined> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: fromHost, port: 0 });
  const local = socket.addr as Deno.NetAddr;
  const text = optionsRequest(port, local, "UDP", "probe");
  try {
    await socket.send(new TextEncoder().encode(text), { transport: "udp", hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = await Promise.race([
      socket.receive().then(([bytes]) => decoder.decode(bytes)),
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
    ]).finally(() => clearTimeout(timer));
    const status = reply === undefined ? undefined : /^SIP\/2\.0 (\d{3})/.exec(reply)?.[1];
    return status === undefined ? undefined : Number(status);
  } finally {
    socket.close();
  }
}

/** Polls `check` (which may be async) every `everyMs` until it returns a value or `ms` passes. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 5000,
  everyMs = 20,
): Promise<T | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Calls the service's SipSignalingService.TerminateCall over gRPC, as the agent does. */
export async function terminateCall(
  grpcPort: number,
  callId: string,
  reason: string,
): Promise<{ success: boolean; message: string }> {
  const client = new SipSignalingServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.terminateCall({ callId, reason }, (e, r) => (e ? reject(e) : resolve(r)))
    );
  } finally {
    client.close();
  }
}

/** Calls the service's SipSignalingService.TransferCall over gRPC, as the agent does (7.1). */
export async function transferCall(
  grpcPort: number,
  callId: string,
  targetUri: string,
  reason = "",
): Promise<{ success: boolean; message: string; sipStatus: number }> {
  const client = new SipSignalingServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.transferCall({ callId, targetUri, reason }, (e, r) => (e ? reject(e) : resolve(r)))
    );
  } finally {
    client.close();
  }
}

/** A TCP proxy to the broker that can be taken down (connections cut) and up again. */
export class CuttableProxy {
  #listener: Deno.Listener | undefined;
  #conns = new Set<Deno.Conn>();
  #accepting: Promise<void> | undefined;
  constructor(readonly port: number, readonly target: { hostname: string; port: number }) {}

  up(): void {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const client of listener) {
        let upstream: Deno.Conn;
        try {
          upstream = await Deno.connect(this.target);
        } catch {
          client.close();
          continue;
        }
        this.#conns.add(client);
        this.#conns.add(upstream);
        const close = () => {
          for (const c of [client, upstream]) {
            this.#conns.delete(c);
            try {
              c.close();
            } catch {
              // already closed
            }
          }
        };
        client.readable.pipeTo(upstream.writable, { preventClose: true }).catch(() => {}).finally(close);
        upstream.readable.pipeTo(client.writable, { preventClose: true }).catch(() => {}).finally(close);
      }
    })();
  }

  async down(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.close();
    await this.#accepting?.catch(() => {});
    for (const c of [...this.#conns]) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
  }
}

/**
 * A SIPp caller (tests/sipp/uac_wait_bye.xml) that stays on the line until the service
 * sends BYE; resolves once `call.answered` reached the bus. `caller` resolves when SIPp
 * has answered our BYE (or timed out).
 */
export async function callUpUntilOurBye(
  sipPort: number,
  consumer: EventConsumer,
): Promise<{ callId: string; caller: Promise<SippResult> }> {
  const before = consumer.events.length;
  const caller = sipp(scenarioPath("uac_wait_bye.xml"), sipPort, ["-s", "905551112233"]);
  const answered = await waitFor(() =>
    consumer.events.slice(before).find((e) => e.routingKey === "call.answered")
  );
  if (answered === undefined) throw new Error(`the call did not come up: ${(await caller).stdout}`);
  return { callId: String(answered.body.callId), caller };
}

/** Where the deployment puts TLS files, and the compiled binary may read (deno.json `service`). */
const TLS_DIR = "/etc/sentiric/tls";

export interface SipTlsFiles extends AsyncDisposable {
  /** The service's settings: certificate, key, CA (mutual TLS) and a free TLS port. */
  readonly env: Record<string, string>;
  readonly port: number;
  /** The test fixtures (CA, the gateway's client certificate, a rogue one). */
  readonly fixtures: string;
}

/**
 * The SIP TLS test certificate, key and CA copied to where the documentation says to
 * put them, so the service reads them under exactly the compile task's permissions.
 */
export async function installSipTls(): Promise<SipTlsFiles> {
  const fixtures = new URL("../fixtures/tls/", import.meta.url).pathname;
  const dir = `${TLS_DIR}/sip-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const name of ["sip-server.pem", "sip-server.key", "sip-ca.pem"]) {
    await Deno.copyFile(`${fixtures}${name}`, `${dir}/${name}`);
  }
  const port = freeTcpPort();
  return {
    port,
    fixtures,
    env: {
      SIP_SIGNALING_SERVICE_TLS_PORT: String(port),
      SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH: `${dir}/sip-server.pem`,
      SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH: `${dir}/sip-server.key`,
      SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH: `${dir}/sip-ca.pem`,
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** An OPTIONS request from `local` to the service at 127.0.0.1:`port`, over `transport`, with Content-Length. */
export function optionsRequest(port: number, local: Deno.NetAddr, transport = "UDP", tag = "o"): string {
  const branch = `z9hG4bK${crypto.randomUUID().replaceAll("-", "")}`;
  return [
    `OPTIONS sip:probe@127.0.0.1:${port};transport=${transport.toLowerCase()} SIP/2.0`,
    `Via: SIP/2.0/${transport} ${local.hostname}:${local.port};branch=${branch};rport`,
    "Max-Forwards: 70",
    `From: <sip:probe@${local.hostname}>;tag=${tag}`,
    `To: <sip:probe@127.0.0.1:${port}>`,
    `Call-ID: ${branch}@probe`,
    "CSeq: 1 OPTIONS",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

/** A durable queue bound to every call event, as a consumer with quorum queues would hold them. */
export async function durableEventQueue(prefix: string): Promise<string> {
  const queue = `${prefix}-${crypto.randomUUID()}`;
  const connection = await amqp.connect(RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    await channel.assertExchange(EVENTS_EXCHANGE, "topic", { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, EVENTS_EXCHANGE, "call.#");
  } finally {
    await connection.close();
  }
  return queue;
}

/** Everything on `queue` (then deleted), by message id: a redelivered event counts once. */
export async function drainEventQueue(
  queue: string,
): Promise<Map<string, { routingKey: string; callId: string }>> {
  const connection = await amqp.connect(RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    const seen = new Map<string, { routingKey: string; callId: string }>();
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message === false) break;
      const body = JSON.parse(Buffer.from(message.content).toString("utf8")) as { callId: string };
      seen.set(String(message.properties.messageId), {
        routingKey: message.fields.routingKey,
        callId: body.callId,
      });
    }
    await channel.deleteQueue(queue);
    return seen;
  } finally {
    await connection.close();
  }
}

/** SIPp's count of successful and failed calls, from its final statistics. */
export function sippCounts(stdout: string): { successful: number; failed: number } {
  return {
    successful: Number(/Successful call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(stdout)?.[1] ?? "0"),
    failed: Number(/Failed call\s+\|\s+\d+\s+\|\s+(\d+)/.exec(stdout)?.[1] ?? "0"),
  };
}
