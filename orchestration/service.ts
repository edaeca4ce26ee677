/**
 * The service wired together: UDP transport -> SIP endpoint (codec, transactions) ->
 * UAS core -> dialogs -> call orchestrator (dialplan/media backends, events), plus
 * the TerminateCall gRPC server and the HTTP health/metrics endpoint. `shutdown()`
 * takes it apart in reverse. main.ts reads the environment and calls this.
 */
import { getLogger } from "@logtape/logtape";
import { SipEndpoint, UasCore, UdpTransport } from "../sip/mod.ts";
import { DialogManager } from "../sip/dialog.ts";
import { redactUrl, type ServiceConfig } from "./config.ts";
import { type MutualTls, serverCredentials, Upstreams } from "./grpc.ts";
import { AmqpEventPublisher, ConsoleEventSink, type EventPublisher } from "./events.ts";
import { type CallBackends, CallOrchestrator } from "./call_setup.ts";
import { startReferenceServersInWorker } from "./reference_worker.ts";
import { startSignalingServer } from "./signaling_server.ts";
import { startHttpServer } from "./http.ts";

const log = getLogger(["main"]);

const SERVER_NAME = "sentiric-sip-signaling";
const ALLOW = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"];

export interface ServiceOptions {
  /** Client certificate, key and CA for mTLS to the backends and on our gRPC server. */
  readonly tls?: MutualTls | undefined;
  /**
   * Backends to use instead of gRPC clients (the benchmark that measures the service
   * without gRPC). Unset: the embedded reference services or the configured URLs.
   */
  readonly backends?: CallBackends | undefined;
}

export interface SignalingService {
  readonly sipPort: number;
  readonly grpcPort: number;
  readonly httpPort: number;
  /**
   * Stops taking calls (503), sends BYE for calls that are up, waits for port
   * releases and event confirms, closes the sockets.
   */
  shutdown(): Promise<void>;
}

export async function startSignalingService(
  config: ServiceConfig,
  options: ServiceOptions = {},
): Promise<SignalingService> {
  // Backends: given (benchmarks), the embedded reference services, or the configured ones.
  const reference = options.backends === undefined && config.embedded
    ? await startReferenceServersInWorker()
    : undefined;
  const tls = reference === undefined ? options.tls : undefined;
  const backends = options.backends ?? new Upstreams({
    dialplanUrl: config.grpc.dialplanUrl ?? reference?.dialplanUrl ?? "",
    mediaUrl: config.grpc.mediaUrl ?? reference?.mediaUrl ?? "",
    userUrl: config.grpc.userUrl ?? reference?.userUrl,
    deadlineMs: config.grpc.deadlineMs,
    tls,
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
  const orchestrator = new CallOrchestrator(backends, events, dialogs, {
    publicIp: config.sip.publicIp,
    defaultCountryCode: config.defaultCountryCode,
    maxCallsInSetup: config.maxCallsInSetup,
    maxEventsPending: config.maxEventsPending,
    setupDeadlineMs: config.grpc.deadlineMs,
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
    serverCredentials(tls),
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

  return {
    sipPort: transport.local.port,
    grpcPort: signaling.port,
    httpPort: http.port,
    async shutdown() {
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
      // The gRPC client channels (and the embedded backends' servers) are left to the
      // process exit on purpose: closing them exchanges GOAWAY frames, and a node:http2
      // session in Deno 2.9 that receives one can abort the process inside nghttp2
      // (denoland/deno#36788; here 3 exits out of 14 were 134 or 139 after load). Every
      // call has ended and every event is confirmed by now, so nothing is lost.
      void backends;
      void reference;
    },
  };
}
