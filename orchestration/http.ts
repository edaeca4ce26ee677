/** Health and metrics over HTTP (SIP_SIGNALING_SERVICE_HTTP_PORT): /healthz, /metrics. */
import process from "node:process";
import type { SipEndpoint } from "../sip/endpoint.ts";
import type { DialogManager } from "../sip/dialog.ts";
import type { CallOrchestrator } from "./call_setup.ts";
import type { EventPublisher } from "./events.ts";

export interface Observed {
  readonly endpoint: SipEndpoint;
  readonly dialogs: DialogManager;
  readonly orchestrator: CallOrchestrator;
  readonly events: EventPublisher;
  /** The TerminateCall process, whose restarts are counted. */
  readonly signaling?: { readonly restarts: number };
}

export function metricsText(o: Observed): string {
  const lines: string[] = [];
  const add = (name: string, value: number, help: string, type = "counter") => {
    lines.push(`# HELP sip_signaling_${name} ${help}`, `# TYPE sip_signaling_${name} ${type}`);
    lines.push(`sip_signaling_${name} ${value}`);
  };
  const { dropped, ...endpointCounters } = o.endpoint.counters;
  for (const [k, v] of Object.entries(endpointCounters)) {
    add(`sip_${snake(k)}_total`, v, `SIP endpoint ${k}`);
  }
  lines.push(
    "# HELP sip_signaling_datagrams_dropped_total Datagrams dropped without a transaction, by reason",
    "# TYPE sip_signaling_datagrams_dropped_total counter",
    ...Object.entries(dropped).map(([reason, v]) =>
      `sip_signaling_datagrams_dropped_total{reason="${reason}"} ${v}`
    ),
  );
  for (const [k, v] of Object.entries(o.orchestrator.counters)) add(`${snake(k)}_total`, v, `Calls: ${k}`);
  if (o.signaling !== undefined) {
    add(
      "grpc_server_restarts_total",
      o.signaling.restarts,
      "Times the TerminateCall process died and was restarted",
    );
  }
  add("calls_in_setup", o.orchestrator.callsInSetup, "Calls between INVITE and final answer", "gauge");
  add("active_dialogs", o.dialogs.size.dialogs, "Dialogs up", "gauge");
  add("calls_in_progress", o.dialogs.size.calls, "Calls being set up or up", "gauge");
  add("events_pending", o.events.pending, "Events not yet confirmed by the bus", "gauge");
  add(
    "sip_request_retransmissions_total",
    o.endpoint.transactions.retransmissionsAbsorbed,
    "Retransmitted requests absorbed by their transaction",
  );
  const tx = o.endpoint.transactions.size;
  add("server_transactions", tx.server, "Live server transactions", "gauge");
  add("client_transactions", tx.client, "Live client transactions", "gauge");
  // The process metrics every Prometheus client exports, under their usual names.
  const cpu = process.cpuUsage();
  const memory = Deno.memoryUsage();
  lines.push(
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
    "# TYPE process_cpu_seconds_total counter",
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
    "# TYPE process_resident_memory_bytes gauge",
    `process_resident_memory_bytes ${memory.rss}`,
    "# HELP nodejs_heap_size_used_bytes Process heap size used from V8 in bytes.",
    "# TYPE nodejs_heap_size_used_bytes gauge",
    `nodejs_heap_size_used_bytes ${memory.heapUsed}`,
    "# HELP nodejs_heap_size_total_bytes Process heap size from V8 in bytes.",
    "# TYPE nodejs_heap_size_total_bytes gauge",
    `nodejs_heap_size_total_bytes ${memory.heapTotal}`,
    "# HELP nodejs_external_memory_bytes V8 external memory (buffers) in bytes.",
    "# TYPE nodejs_external_memory_bytes gauge",
    `nodejs_external_memory_bytes ${memory.external}`,
    "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
    "# TYPE process_start_time_seconds gauge",
    `process_start_time_seconds ${Math.round(STARTED_AT_MS / 1000)}`,
  );
  return lines.join("\n") + "\n";
}

const STARTED_AT_MS = Date.now() - performance.now();

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function startHttpServer(
  hostname: string,
  port: number,
  observed: Observed,
): { port: number; close(): Promise<void> } {
  const server = Deno.serve({ hostname, port, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return Response.json({ status: "ok", dialogs: observed.dialogs.size.dialogs });
    if (path === "/metrics") {
      return new Response(metricsText(observed), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    return new Response("not found\n", { status: 404 });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}
