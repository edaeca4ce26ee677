/**
 * sip-signaling: the SIP signaling service of the Sentiric voice-AI platform.
 *
 * The only place that reads the environment and flags and wires the layers:
 *   UDP transport -> SIP endpoint (codec, transactions) -> UAS core -> dialogs
 *   -> call orchestrator (gRPC dialplan/media, RabbitMQ events)
 * Shutdown runs the wiring in reverse on one AbortSignal (SIGINT/SIGTERM).
 *
 *   deno task dev     # embedded reference backends, event sink on stdout
 *   deno task start   # production: configured from the environment
 */
import { getLogger } from "@logtape/logtape";
import { SipEndpoint, UasCore, UdpTransport } from "./sip/mod.ts";
import { DialogManager } from "./sip/dialog.ts";
import {
  CONFIG_ENV_NAMES,
  type ConfigEnv,
  ConfigError,
  parseConfig,
  redactUrl,
} from "./orchestration/config.ts";
import { configureLogging, resetLogging } from "./orchestration/logging.ts";
import { type MutualTls, serverCredentials, Upstreams } from "./orchestration/grpc.ts";
import { AmqpEventPublisher, ConsoleEventSink, type EventPublisher } from "./orchestration/events.ts";
import { CallOrchestrator } from "./orchestration/call_setup.ts";
import { startReferenceServersInWorker } from "./orchestration/reference_worker.ts";
import { startSignalingServer } from "./orchestration/signaling_server.ts";
import { startHttpServer } from "./orchestration/http.ts";

const SERVER_NAME = "sentiric-sip-signaling";
const ALLOW = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"];

function readEnv(): ConfigEnv {
  const env: ConfigEnv = {};
  for (const name of CONFIG_ENV_NAMES) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(readEnv(), { embedded: Deno.args.includes("--embedded") });
  } catch (error) {
    if (error instanceof ConfigError) {
      // Logging is not configured yet: one plain line on stderr.
      // deno-lint-ignore no-console
      console.error(`sip-signaling: configuration error: ${error.message}`);
      return 2;
    }
    throw error;
  }
  await configureLogging(config.development || config.embedded);
  const log = getLogger(["main"]);
  const shutdown = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => shutdown.abort());

  let tls: MutualTls | undefined;
  if (config.grpc.tls !== undefined) {
    const read = (variable: string, path: string): Uint8Array => {
      try {
        return Deno.readFileSync(path);
      } catch (error) {
        // The compiled binary may read only under /etc/sentiric/tls/ (deno.json permissions).
        const reason = error instanceof Error ? error.message : String(error);
        throw new ConfigError(variable, `cannot read "${path}": ${reason}`);
      }
    };
    try {
      tls = {
        cert: read("SIP_SIGNALING_SERVICE_CERT_PATH", config.grpc.tls.certPath),
        key: read("SIP_SIGNALING_SERVICE_KEY_PATH", config.grpc.tls.keyPath),
        ca: read("GRPC_TLS_CA_PATH", config.grpc.tls.caPath),
      };
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      log.fatal("Configuration error: {message}", { message: error.message });
      await resetLogging();
      return 2;
    }
  }

  const reference = config.embedded ? await startReferenceServersInWorker() : undefined;
  const upstreams = new Upstreams({
    dialplanUrl: config.grpc.dialplanUrl ?? reference?.dialplanUrl ?? "",
    mediaUrl: config.grpc.mediaUrl ?? reference?.mediaUrl ?? "",
    userUrl: config.grpc.userUrl ?? reference?.userUrl,
    deadlineMs: config.grpc.deadlineMs,
    tls: reference === undefined ? tls : undefined,
  });

  let events: EventPublisher;
  if (config.rabbitmqUrl !== undefined) {
    const amqp = new AmqpEventPublisher({ url: config.rabbitmqUrl });
    await amqp.start().catch(() => {}); // Keeps retrying; events wait in the outbox.
    events = amqp;
  } else {
    events = new ConsoleEventSink();
  }

  const transport = UdpTransport.listen({ hostname: config.sip.listenAddress, port: config.sip.port });
  const endpoint = new SipEndpoint(transport, { timers: config.sip });
  const dialogs = new DialogManager(endpoint, {
    contactHost: config.sip.publicIp,
    contactPort: transport.local.port,
    sessionExpires: config.sip.sessionExpires,
    minSE: config.sip.minSE,
    allow: ALLOW,
    serverName: SERVER_NAME,
  });
  const orchestrator = new CallOrchestrator(upstreams, events, dialogs, {
    publicIp: config.sip.publicIp,
    defaultCountryCode: config.defaultCountryCode,
    maxCallsInSetup: config.maxCallsInSetup,
  });
  dialogs.setController(orchestrator);
  endpoint.start(
    new UasCore(endpoint.transactions, dialogs, {
      allow: ALLOW,
      supported: ["timer"],
      accept: ["application/sdp"],
      serverName: SERVER_NAME,
    }),
  );
  const grpcHost = config.sip.listenAddress.includes(":")
    ? `[${config.sip.listenAddress}]`
    : config.sip.listenAddress;
  const signaling = await startSignalingServer(
    orchestrator,
    `${grpcHost}:${config.grpc.port}`,
    serverCredentials(reference === undefined ? tls : undefined),
  );
  const http = startHttpServer(config.sip.listenAddress, config.httpPort, {
    endpoint,
    dialogs,
    orchestrator,
    events,
  });

  log.info("SIP signaling ready on udp {sip}, gRPC {grpc}, HTTP {http}; events to {bus}", {
    sip: `${transport.local.hostname}:${transport.local.port}`,
    grpc: signaling.port,
    http: http.port,
    bus: config.rabbitmqUrl === undefined ? "stdout" : redactUrl(config.rabbitmqUrl),
    embedded: config.embedded,
  });

  await new Promise<void>((resolve) =>
    shutdown.signal.addEventListener("abort", () => resolve(), { once: true })
  );
  log.info("Shutting down");
  orchestrator.stopAccepting();
  dialogs.closeAll("terminated_by_request");
  await new Promise((r) => setTimeout(r, 200)); // Let BYEs leave.
  await http.close();
  await new Promise<void>((r) => signaling.server.tryShutdown(() => r()));
  await endpoint.close();
  // Port releases of the calls just ended, and setups now rejected, finish first.
  if (!await orchestrator.settle(3000)) log.warn("Shutdown: backend calls still unanswered after 3 s");
  await events.drain(3000);
  await events.close();
  await resetLogging();
  // The gRPC client channels (and the embedded backends' servers) are left to the
  // process exit on purpose: closing them exchanges GOAWAY frames, and a node:http2
  // session in Deno 2.9 that receives one can abort the process inside nghttp2
  // (denoland/deno#36788; here 3 exits out of 14 were 134 or 139 after load). Every call
  // has ended and every event is confirmed by now, so nothing is lost by not closing.
  void upstreams;
  void reference;
  return 0;
}

Deno.exit(await main());
