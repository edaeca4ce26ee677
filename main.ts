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
import {
  configEnv,
  ConfigError,
  effectiveConfig,
  parseConfig,
  RETIRED_ENV_NAMES,
} from "./orchestration/config.ts";
import { helpText, parseFlags } from "./orchestration/command_line.ts";
import { configureLogging, resetLogging } from "./orchestration/logging.ts";
import type { MutualTls } from "./orchestration/grpc.ts";
import { ListenError, startSignalingService } from "./orchestration/service.ts";
import { VERSION } from "./orchestration/version.ts";
import { SIGNALING_CHILD_FLAG } from "./orchestration/signaling_relay.ts";
import { runSignalingChild } from "./orchestration/signaling_child.ts";
import { runUpstreamsChild, UPSTREAMS_CHILD_FLAG } from "./orchestration/upstreams_child.ts";

/** One plain line on stderr (logging is not configured yet, or is already gone). */
function fail(message: string): number {
  // deno-lint-ignore no-console
  console.error(`sip-signaling: ${message}`);
  return 2;
}

async function main(): Promise<number> {
  // The compiled binary also runs its supervised child processes: TerminateCall's server
  // and the backends' clients (see orchestration/supervised_child.ts).
  if (Deno.args[0] === SIGNALING_CHILD_FLAG) {
    await runSignalingChild();
    return 0;
  }
  if (Deno.args[0] === UPSTREAMS_CHILD_FLAG) {
    await runUpstreamsChild();
    return 0;
  }
  let config;
  try {
    const cli = parseFlags(Deno.args);
    if (cli.help || cli.version) {
      // deno-lint-ignore no-console
      console.log(cli.help ? helpText(VERSION) : `sip-signaling ${VERSION}`);
      return 0;
    }
    config = parseConfig({ ...configEnv((name) => Deno.env.get(name)), ...cli.env }, cli.flags);
  } catch (error) {
    if (error instanceof ConfigError) return fail(`configuration error: ${error.message}`);
    throw error;
  }
  await configureLogging(config.development || config.embedded, config.logLevel);
  const log = getLogger(["main"]);
  log.info("Configuration: {config}", { config: effectiveConfig(config), version: VERSION });
  for (const name of config.retired) {
    log.warn("{variable} is no longer read: {why}", { variable: name, why: RETIRED_ENV_NAMES[name] });
  }
  // SIGTERM drains (repeats change nothing); SIGINT, or SIGINT during a drain, stops at once.
  const drain = Promise.withResolvers<void>();
  const stopNow = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => drain.resolve());
  Deno.addSignalListener("SIGINT", () => stopNow.resolve());

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

  let service;
  try {
    service = await startSignalingService(config, { tls });
  } catch (error) {
    const message = startFailure(error);
    if (message === undefined) throw error;
    await resetLogging();
    return fail(message);
  }
  const how = await Promise.race([
    drain.promise.then(() => "drain" as const),
    stopNow.promise.then(() => "now" as const),
  ]);
  if (how === "drain") await service.drain(stopNow.promise);
  await service.shutdown();
  await resetLogging();
  return 0;
}

/** One line for a start-up failure an operator can fix (a port in use), naming the setting. */
function startFailure(error: unknown): string | undefined {
  return error instanceof ListenError ? `cannot start: ${error.message}` : undefined;
}

Deno.exit(await main());
