/**
 * `/metrics` (CONTRACTS.md 7.4) on prom-client: the families dashboards rely on, with
 * exactly those names, types and labels, the runtime's default process and event-loop
 * metrics, and a few more an operator needs (SIP counters, transactions, dialogs,
 * retransmissions, backend channel state, readiness). The kernel's UDP receive-buffer
 * drops are node_exporter's `node_netstat_Udp_RcvbufErrors`: Deno reads /proc only
 * with all permissions.
 * The layers below keep plain counters; this module reads them when scraped, so
 * `sip/` knows nothing of Prometheus. Histograms are observed as events happen.
 */
import client from "prom-client";
import { type DialogManager, type SipEndpoint, StreamTransport } from "../sip/mod.ts";
import type { CallOrchestrator } from "./call_setup.ts";
import type { EventPublisher } from "./events.ts";
import type { ChannelState } from "./grpc.ts";
import { VERSION } from "./version.ts";

/** What the metrics read at scrape time. */
export interface Observed {
  readonly endpoint: SipEndpoint;
  readonly dialogs: DialogManager<unknown>;
  readonly orchestrator: CallOrchestrator;
  readonly events: EventPublisher;
  /** The TerminateCall process, whose restarts are counted. */
  readonly signaling?: { readonly restarts: number };
  /** The gRPC client process, whose restarts are counted. */
  readonly upstreams?: { readonly restarts: number };
  /** Backend channel states (unset with in-memory backends). */
  readonly channels?: () => Readonly<Record<string, ChannelState>>;
  /** The last readiness verdict. */
  readonly ready?: () => boolean;
}

const PREFIX = "sip_signaling_";

/** At most this many distinct `reason` label values; the rest count as "other". */
const MAX_REASONS = 32;

/** A `call.ended` reason as a label value: a short snake_case word, else "other". */
export function reasonLabel(reason: string, seen: ReadonlyMap<string, number>): string {
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(reason)) return "other";
  return seen.has(reason) || seen.size < MAX_REASONS ? reason : "other";
}

/** Setup takes milliseconds normally and up to the budget (2 s default) when a backend is slow. */
const SETUP_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5];
const GRPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5];

const CHANNEL_STATES: readonly ChannelState[] = [
  "IDLE",
  "CONNECTING",
  "READY",
  "TRANSIENT_FAILURE",
  "SHUTDOWN",
];

/**
 * prom-client's process metrics that read /proc/self: Deno lets a program read /proc
 * only with all permissions, which the service does not have, so they would read 0.
 * Resident memory comes from the runtime instead; the rest are node_exporter's job.
 */
const PROC_SELF_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

export class ServiceMetrics {
  readonly registry = new client.Registry();
  readonly #setupDuration: client.Histogram;
  readonly #grpcDuration: client.Histogram<"service" | "method" | "code">;
  /** New INVITEs by the final status sent (counted as answered, not at scrape time). */
  readonly #invites: client.Counter<"status">;
  #observed: Observed | undefined;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    for (const name of PROC_SELF_METRICS) this.registry.removeSingleMetric(name);
    new client.Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    this.#invites = new client.Counter({
      name: `${PREFIX}invites_total`,
      help: "New INVITEs by the final status sent for them",
      labelNames: ["status"],
      registers,
    });
    this.#setupDuration = new client.Histogram({
      name: `${PREFIX}setup_duration_seconds`,
      help: "INVITE received to final response sent",
      buckets: SETUP_BUCKETS,
      registers,
    });
    this.#grpcDuration = new client.Histogram({
      name: `${PREFIX}grpc_client_duration_seconds`,
      help: "Calls to the backends, by service, method and gRPC status code",
      labelNames: ["service", "method", "code"],
      buckets: GRPC_BUCKETS,
      registers,
    });
    new client.Gauge({
      name: `${PREFIX}build_info`,
      help: "The running release",
      labelNames: ["version"],
      registers,
    }).set({ version: VERSION }, 1);
    this.#collected();
  }

  /** Starts reading the service's state at each scrape. */
  observe(observed: Observed): void {
    this.#observed = observed;
  }

  /** A new INVITE got its final response `ms` after it arrived. */
  inviteAnswered(status: number, ms: number): void {
    this.#invites.inc({ status: String(status) });
    this.#setupDuration.observe(ms / 1000);
  }

  /** A backend call finished. */
  grpcCall(service: string, method: string, code: string, seconds: number): void {
    this.#grpcDuration.observe({ service, method, code }, seconds);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Families whose values live in the layers and are read at scrape time. */
  #collected(): void {
    const registers = [this.registry];
    const o = () => this.#observed;
    const gauge = (name: string, help: string, read: (o: Observed) => number | undefined) =>
      new client.Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers,
        collect() {
          const observed = o();
          const value = observed === undefined ? undefined : read(observed);
          if (value !== undefined) this.set(value);
        },
      });
    /** A counter whose running total another layer keeps: set to it at each scrape. */
    const counter = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      read: (o: Observed) => Iterable<[Partial<Record<L, string>>, number]>,
    ) =>
      new client.Counter<L>({
        name: `${PREFIX}${name}`,
        help,
        labelNames,
        registers,
        collect() {
          const observed = o();
          if (observed === undefined) return;
          this.reset();
          for (const [labels, value] of read(observed)) this.inc(labels, value);
        },
      });

    counter(
      "calls_ended_total",
      "Calls that ended, by reason",
      ["reason"],
      (x) => {
        // TerminateCall's reason is the agent's free text: bound the label's values.
        const byLabel = new Map<string, number>();
        for (const [reason, n] of x.orchestrator.endedByReason) {
          const label = reasonLabel(reason, byLabel);
          byLabel.set(label, (byLabel.get(label) ?? 0) + n);
        }
        return [...byLabel].map(([reason, n]) => [{ reason }, n]);
      },
    );
    counter(
      "events_published_total",
      "Events confirmed by the broker, by type",
      ["type"],
      (x) => [...x.events.confirmedByType].map(([type, n]) => [{ type }, n]),
    );
    counter(
      "datagrams_dropped_total",
      "Datagrams dropped without a transaction, by reason",
      ["reason"],
      (x) => Object.entries(x.endpoint.counters.dropped).map(([reason, n]) => [{ reason }, n]),
    );
    gauge("events_pending", "Events not yet confirmed by the broker", (x) => x.events.pending);
    gauge("broker_connected", "1 while the broker connection is up", (x) => (x.events.connected ? 1 : 0));
    gauge("active_calls", "Calls up (dialogs confirmed or awaiting ACK)", (x) => x.dialogs.size.dialogs);
    gauge("calls_in_setup", "Calls between INVITE and final answer", (x) => x.orchestrator.callsInSetup);
    gauge(
      "ready",
      "1 while the instance takes calls (see /readyz)",
      (x) => x.ready === undefined ? 1 : (x.ready() ? 1 : 0),
    );

    // Beyond the contract: what an operator looks at when the above says something is wrong.
    const sip = [
      ["datagramsReceived", "datagrams_received_total", "UDP datagrams and TCP/TLS messages received"],
      ["keepAlives", "keep_alives_total", "CRLF keep-alives received"],
      ["requestsReceived", "requests_received_total", "SIP requests received"],
      ["responsesReceived", "responses_received_total", "SIP responses received"],
      ["parseErrors", "parse_errors_total", "Messages that could not be parsed"],
      [
        "badRequestsAnswered",
        "bad_requests_answered_total",
        "Requests answered 400/505 without a transaction",
      ],
      ["strayResponses", "stray_responses_total", "Responses matching no transaction"],
      ["sendErrors", "send_errors_total", "Datagrams the transport failed to send"],
      ["handlerErrors", "handler_errors_total", "Unexpected errors handling a datagram"],
    ] as const;
    for (const [key, name, help] of sip) {
      counter(`sip_${name}`, help, [], (x) => [[{}, x.endpoint.counters[key]]]);
    }
    const streams = (x: Observed) => x.endpoint.transports.filter((t) => t instanceof StreamTransport);
    counter(
      "sip_connections_accepted_total",
      "SIP TCP/TLS connections accepted",
      ["transport"],
      (x) => streams(x).map((t) => [{ transport: t.protocol }, t.counters.accepted]),
    );
    counter(
      "sip_connections_opened_total",
      "SIP TCP/TLS connections we opened (a response or BYE whose connection had closed)",
      ["transport"],
      (x) => streams(x).map((t) => [{ transport: t.protocol }, t.counters.opened]),
    );
    const byReason = (x: Observed, what: "refused" | "closed") =>
      streams(x).flatMap((t) =>
        Object.entries(t.counters[what]).map(([reason, n]) =>
          [{ transport: t.protocol, reason }, n] as [Record<string, string>, number]
        )
      );
    counter(
      "sip_connections_refused_total",
      "SIP TCP/TLS connections closed at accept: not_allowed, connection_limit, source_limit",
      ["transport", "reason"],
      (x) => byReason(x, "refused"),
    );
    counter(
      "sip_connections_closed_total",
      "SIP TCP/TLS connections we closed: idle_timeout, message_timeout, framing, write_backlog",
      ["transport", "reason"],
      (x) => byReason(x, "closed"),
    );
    new client.Gauge<"transport">({
      name: `${PREFIX}sip_connections`,
      help: "SIP TCP/TLS connections open",
      labelNames: ["transport"],
      registers,
      collect() {
        const x = o();
        if (x === undefined) return;
        for (const t of streams(x)) this.set({ transport: t.protocol }, t.connectionCount);
      },
    });
    counter(
      "sip_request_retransmissions_total",
      "Retransmitted requests absorbed by their transaction",
      [],
      (x) => [[{}, x.endpoint.transactions.retransmissionsAbsorbed]],
    );
    counter(
      "retransmissions_sent_total",
      "Requests and responses we sent again (timers A/E/G, 2xx until ACK)",
      [],
      (x) => [[{}, x.endpoint.transactions.retransmissionsSent]],
    );
    gauge("server_transactions", "Live server transactions", (x) => x.endpoint.transactions.size.server);
    gauge("client_transactions", "Live client transactions", (x) => x.endpoint.transactions.size.client);
    gauge("active_dialogs", "Dialogs up", (x) => x.dialogs.size.dialogs);
    gauge("calls_in_progress", "Calls being set up or up", (x) => x.dialogs.size.calls);
    const offered = [
      ["callsOffered", "calls_offered_total", "New calls offered"],
      ["callsAnswered", "calls_answered_total", "Calls answered 200"],
      ["callsRejected", "calls_rejected_total", "Calls rejected by the failure table"],
      ["callsShed", "calls_shed_total", "Calls refused with 503 before any backend was asked"],
      ["portReleaseFailures", "port_release_failures_total", "ReleasePort calls that failed"],
    ] as const;
    for (const [key, name, help] of offered) {
      counter(name, help, [], (x) => [[{}, x.orchestrator.counters[key]]]);
    }
    counter(
      "grpc_server_restarts_total",
      "Times the TerminateCall process died and was started again",
      [],
      (x) => [[{}, x.signaling?.restarts ?? 0]],
    );
    counter(
      "grpc_client_restarts_total",
      "Times the process that calls the backends died and was started again (a backend's GOAWAY can crash it)",
      [],
      (x) => [[{}, x.upstreams?.restarts ?? 0]],
    );
    new client.Gauge<"service" | "state">({
      name: `${PREFIX}backend_channel_state`,
      help: "1 for the state each backend channel is in (grpc-js connectivity state)",
      labelNames: ["service", "state"],
      registers,
      collect() {
        const channels = o()?.channels?.();
        if (channels === undefined) return;
        this.reset();
        for (const [service, current] of Object.entries(channels)) {
          for (const state of CHANNEL_STATES) this.set({ service, state }, state === current ? 1 : 0);
        }
      },
    });
  }
}
