// The service exactly as main.ts starts it, but with the dialplan and media backends
// in memory instead of gRPC clients: what the SIP, dialog, SDP, event and logging path
// costs without gRPC. Benchmark only; it takes the same environment as the service.
//   deno run -P=service bench/service_in_memory.ts
import * as grpc from "@grpc/grpc-js";
import { configEnv, parseConfig } from "../orchestration/config.ts";
import { configureLogging, resetLogging } from "../orchestration/logging.ts";
import { startSignalingService } from "../orchestration/service.ts";
import type { CallBackends } from "../orchestration/call_setup.ts";
import { UpstreamError } from "../orchestration/grpc.ts";
import { PortPool } from "../orchestration/reference/servers.ts";
import { ActionType, type ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";

/** Every number routes to the AI agent; ports come from a real pool and go back to it. */
class InMemoryBackends implements CallBackends {
  readonly #ports = new PortPool();
  resolveDialplan(): Promise<ResolveDialplanResponse> {
    return Promise.resolve({
      dialplanId: "dp_in_memory",
      tenantId: "sentiric_demo",
      action: {
        action: "START_AI_CONVERSATION",
        type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
        actionData: {},
      },
    });
  }
  allocatePort(callId: string): Promise<number> {
    const port = this.#ports.allocate(callId);
    return port === undefined
      ? Promise.reject(new UpstreamError("media", grpc.status.RESOURCE_EXHAUSTED, "no free RTP port"))
      : Promise.resolve(port);
  }
  releasePort(rtpPort: number): Promise<boolean> {
    return Promise.resolve(this.#ports.release(rtpPort));
  }
}

const config = parseConfig(configEnv((name) => Deno.env.get(name)), { embedded: true });
await configureLogging(true);
const service = await startSignalingService(config, { backends: new InMemoryBackends() });
const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => stop.abort());
await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
await service.shutdown();
await resetLogging();
Deno.exit(0);
