/**
 * The service wired together: UDP, TCP and TLS transports -> SIP endpoint (codec, transactions) ->
 * UAS core -> dialogs -> call orchestrator (dialplan/media backends, events), plus
 * the TerminateCall gRPC server and the HTTP health/metrics endpoint. `shutdown()`
 * takes it apart in reverse. main.ts reads the environment and calls this.
 */
import { getLogger } from "@logtape/logtape";
import { DialogManager, SipEndpoint, UasCore } from "../sip/mod.ts";
import { redactUrl, type ServiceConfig } from "./config.ts";
import type { MutualTls } from "./grpc.ts";
import { UpstreamsProcess } from "./upstreams_process.ts";
import { AmqpEventPublisher, ConsoleEventSink, type EventPublisher } from "./events.ts";
import { type CallBackends, CallOrchestrator, type CallRecord } from "./call_setup.ts";
import { startReferenceServersInWorker } from "./reference/worker.ts";
import { SignalingServerProcess } from "./signaling_relay.ts";
import { startHttpServer } from "./http.ts";
import { ServiceMetrics } from "./metrics.ts";
import { Readiness } from "./readiness.ts";
import { openSipTransports } from "./sip_transports.ts";
import { hostPort, listening, listeningAsync } from "./listen.ts";
export { ListenError } from "./listen.ts";

const log = getLogger(["main"]);

const ALLOW = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "NOTIFY"];

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
  /** UDP and TCP. */
  readonly sipPort: number;
  readonly tlsPort: number | undefined;
  readonly grpcPort: number;
  readonly httpPort: number;
  /**
   * SIGTERM (CONTRACTS.md 7.4): no new calls (INVITE and OPTIONS get 503), calls that
   * are up run to their own end; after `drainTimeoutS` those still up get our BYE
   * (reason drain_timeout). Resolves when no call is left, or at once on `interrupt`.
   */
  drain(interrupt: Promise<void>): Promise<void>;
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
  const metrics = new ServiceMetrics();
  // The gRPC clients run in a process of their own (see upstreams_process.ts).
  const upstreams = options.backends === undefined
    ? await UpstreamsProcess.start({
      dialplanUrl: config.grpc.dialplanUrl ?? reference?.dialplanUrl ?? "",
      mediaUrl: config.grpc.mediaUrl ?? reference?.mediaUrl ?? "",
      deadlineMs: config.setupTimeoutMs,
      tls,
      observe: (service, method, code, seconds) => metrics.grpcCall(service, method, code, seconds),
    })
    : undefined;
  const backends: CallBackends = options.backends ?? upstreams as UpstreamsProcess;
  const channels = upstreams === undefined ? undefined : (probe: boolean) => upstreams.channelStates(probe);

  let events: EventPublisher;
  if (config.rabbitmqUrl !== undefined) {
    const amqp = new AmqpEventPublisher({ url: config.rabbitmqUrl });
    await amqp.start().catch(() => {}); // Keeps retrying; events wait in the outbox.
    events = amqp;
  } else {
    events = new ConsoleEventSink();
  }

  const transports = await openSipTransports(config.sip);
  const transport = transports.udp;
  const endpoint = new SipEndpoint(transports.all, {
    timers: config.sip,
    allowedSources: config.sip.allowedSources,
    onInviteAnswered: (status, ms) => metrics.inviteAnswered(status, ms),
  });
  const dialogs = new DialogManager<CallRecord>(endpoint, {
    contactHost: config.sip.publicIp,
    contactPort: transport.local.port,
    sessionExpires: config.sip.sessionExpires,
    minSE: config.sip.minSE,
    allow: ALLOW,
    serverName: config.sip.serverHeader,
    maxCallDurationMs: config.maxCallDurationS * 1000,
  });
  const orchestrator: CallOrchestrator = new CallOrchestrator(backends, events, dialogs, {
    publicIp: config.sip.publicIp,
    defaultCountryCode: config.defaultCountryCode,
    maxCallsInSetup: config.maxCallsInSetup,
    maxCalls: config.maxCalls,
    maxEventsPending: config.maxEventsPending,
    setupTimeoutMs: config.setupTimeoutMs,
    forwardHeaders: config.forwardHeaders,
    ready: (): boolean => readiness.ready,
  });
  const readiness: Readiness = new Readiness({
    sipBound: () => endpoint.listening,
    channels,
    events,
    accepting: (): boolean => orchestrator.accepting,
    channelGraceMs: config.setupTimeoutMs,
  });
  dialogs.setController(orchestrator);
  endpoint.start(
    new UasCore(endpoint.transactions, dialogs, {
      allow: ALLOW,
      supported: ["timer"],
      accept: ["application/sdp"],
      serverName: config.sip.serverHeader,
      accepting: () => readiness.ready,
    }),
  );
  const grpcAddress = hostPort(config.grpc.listenAddress, config.grpc.port);
  const signaling = await listeningAsync(
    "SIP_SIGNALING_SERVICE_GRPC_PORT",
    grpcAddress,
    () => SignalingServerProcess.start(orchestrator, grpcAddress, tls),
  );
  const http = listening(
    "SIP_SIGNALING_SERVICE_HTTP_PORT",
    hostPort(config.httpListenAddress, config.httpPort),
    () => startHttpServer(config.httpListenAddress, config.httpPort, { metrics, readiness }),
  );
  metrics.observe({
    endpoint,
    dialogs,
    orchestrator,
    events,
    signaling,
    ...(upstreams === undefined ? {} : { upstreams }),
    ...(channels === undefined ? {} : { channels: () => channels(false) }),
    ready: () => readiness.ready,
  });
  readiness.start();
  log.info("SIP accepted only from {allowedSources}; setup budget {setupTimeoutMs} ms", {
    allowedSources: config.sip.allowedSources.toString(),
    setupTimeoutMs: config.setupTimeoutMs,
    maxCalls: config.maxCalls,
    maxCallsInSetup: config.maxCallsInSetup,
    maxCallDurationS: config.maxCallDurationS,
    drainTimeoutS: config.drainTimeoutS,
  });

  log.info("SIP signaling ready on udp and tcp {sip}{tls}, gRPC {grpc}, HTTP {http}; events to {bus}", {
    sip: `${transport.local.hostname}:${transport.local.port}`,
    tls: transports.tls === undefined ? "" : `, tls ${transports.tls.local.port}`,
    grpc: signaling.port,
    http: http.port,
    bus: config.rabbitmqUrl === undefined ? "stdout" : config.rabbitmqUrl.map(redactUrl).join(", "),
    embedded: config.embedded,
  });

  return {
    sipPort: transport.local.port,
    tlsPort: transports.tls?.local.port,
    grpcPort: signaling.port,
    httpPort: http.port,
    async drain(interrupt) {
      orchestrator.stopAccepting();
      readiness.evaluate(); // not ready at once: OPTIONS 503 from the next probe on
      let interrupted = false;
      void interrupt.then(() => interrupted = true);
      const until = Date.now() + config.drainTimeoutS * 1000;
      log.info("Draining: no new calls; {calls} calls up may run for up to {drainTimeoutS} s", {
        calls: dialogs.size.calls,
        drainTimeoutS: config.drainTimeoutS,
      });
      while (dialogs.size.calls > 0 && !interrupted && Date.now() < until) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([interrupt, new Promise((r) => timer = setTimeout(r, 100))]);
        clearTimeout(timer);
      }
      if (interrupted) log.info("Drain interrupted (SIGINT)");
      else if (dialogs.size.calls > 0) {
        log.warn("Drain timeout: {calls} calls still up get our BYE", { calls: dialogs.size.calls });
        dialogs.closeAll("drain_timeout");
      } else log.info("Drained: no call left");
    },
    async shutdown() {
      log.info("Shutting down");
      orchestrator.stopAccepting();
      dialogs.closeAll("terminated_by_request");
      await new Promise((r) => setTimeout(r, 200)); // Let BYEs leave.
      readiness.stop();
      await http.close();
      await signaling.close();
      await endpoint.close();
      // Port releases of the calls just ended, and setups now rejected, finish first.
      if (!await orchestrator.settle(3000)) log.warn("Shutdown: backend calls still unanswered after 3 s");
      await events.drain(3000);
      await events.close();
      // The gRPC client process ends without closing its channels (the GOAWAY exchange
      // could abort it: denoland/deno#36788); so are the embedded backends' servers left
      // to the process exit. Every call has ended and every event is confirmed by now.
      await upstreams?.close();
      void reference;
    },
  };
}
