/**
 * Health, readiness and metrics over HTTP (SIP_SIGNALING_SERVICE_HTTP_PORT,
 * CONTRACTS.md 7.4): `/healthz` (alive, event loop responsive), `/readyz` (the checks
 * of `readiness.ts`, 503 while not ready), `/metrics` (Prometheus text, `metrics.ts`).
 */
import type { ServiceMetrics } from "./metrics.ts";
import type { Readiness } from "./readiness.ts";

export function startHttpServer(
  hostname: string,
  port: number,
  surface: { readonly metrics: ServiceMetrics; readonly readiness: Readiness },
): { port: number; close(): Promise<void> } {
  const server = Deno.serve({ hostname, port, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") {
      return Response.json({ status: "ok", eventLoopLagMs: Math.round(surface.readiness.eventLoopLagMs) });
    }
    if (path === "/readyz") {
      const report = surface.readiness.evaluate(true);
      return Response.json(report, { status: report.status === "ready" ? 200 : 503 });
    }
    if (path === "/metrics") {
      return new Response(await surface.metrics.text(), {
        headers: { "content-type": surface.metrics.contentType },
      });
    }
    return new Response("not found\n", { status: 404 });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}
