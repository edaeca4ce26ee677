/**
 * sip-signaling: the SIP signaling service of the Sentiric voice-AI platform.
 *
 * The only place that reads the environment, flags and files (TLS), then starts the
 * service (orchestration/service.ts) and shuts it down on SIGINT/SIGTERM.
 *
 *   deno task dev     # embedded reference backends, event sink on stdout
 *   deno task start   # production: configured from the environment
 */
import { getLogger } from "@logtape/logtape";
import { configEnv, ConfigError, parseConfig } from "./orchestration/config.ts";
import { configureLogging, resetLogging } from "./orchestration/logging.ts";
import type { MutualTls } from "./orchestration/grpc.ts";
import { startSignalingService } from "./orchestration/service.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(configEnv((name) => Deno.env.get(name)), {
      embedded: Deno.args.includes("--embedded"),
    });
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

  const service = await startSignalingService(config, { tls });
  await new Promise<void>((resolve) =>
    shutdown.signal.addEventListener("abort", () => resolve(), { once: true })
  );
  await service.shutdown();
  await resetLogging();
  return 0;
}

Deno.exit(await main());
