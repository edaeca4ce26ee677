// Kamailio for tests: `runKamailio` starts one with a configuration file and defines;
// `startGateway` is the platform's gateway, deploy/kamailio/kamailio.cfg as shipped,
// its operator settings given as defines (loopback ports, short probe timers).
import { freeUdpPort, waitFor } from "./harness.ts";

/** Whether Kamailio can run here; under CI=true its absence is a failure, never a skip. */
export async function kamailioAvailable(): Promise<boolean> {
  try {
    await new Deno.Command("kamailio", { args: ["-v"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    if (Deno.env.get("CI") === "true") {
      throw new Error("Kamailio missing; CI must install it (apt-get install kamailio kamailio-tls-modules)");
    }
    // deno-lint-ignore no-console
    console.warn("SKIPPED: Kamailio tests need kamailio (apt-get install kamailio)");
    return false;
  }
}

export interface KamailioProcess {
  readonly pid: number;
  /** What it wrote to stderr (its log, with -E). */
  readonly log: string[];
  /** SIGTERM, wait, and remove `dir`. */
  stop(): Promise<void>;
}

/** Runs `kamailio -f cfg` in the foreground with its runtime files in `dir`, `-A` for each define. */
export async function runKamailio(
  cfg: string,
  dir: string,
  defines: readonly string[],
): Promise<KamailioProcess> {
  const child = new Deno.Command("kamailio", {
    args: ["-f", cfg, "-DD", "-E", "-Y", dir, "-m", "64", "-M", "8", ...defines.flatMap((d) => ["-A", d])],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const log: string[] = [];
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log.push(chunk);
  })();
  await waitFor(() => log.join("").includes("INFO") || undefined, 3000);
  await new Promise((r) => setTimeout(r, 300));
  return {
    pid: child.pid,
    log,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      await child.status;
      await pump;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

export interface GatewayOptions {
  /** OPTIONS probe interval, s. */
  readonly pingInterval?: number;
  /** Wait for an instance's first answer before failing over, ms. */
  readonly frTimerMs?: number;
  /** How the gateway reaches the instances (the dispatcher list's `;transport=`). Default UDP. */
  readonly transport?: "udp" | "tcp";
}

export interface Gateway extends KamailioProcess {
  /** Where callers send (UDP and TCP). */
  readonly port: number;
}

/** Starts Kamailio in front of the instances at 127.0.0.1:`ports` (dispatcher set 1). */
export async function startGateway(ports: readonly number[], options: GatewayOptions = {}): Promise<Gateway> {
  const port = freeUdpPort();
  const dir = await Deno.makeTempDir({ prefix: "gateway-" });
  const list = `${dir}/dispatcher.list`;
  const param = options.transport === "tcp" ? ";transport=tcp" : "";
  await Deno.writeTextFile(list, ports.map((p) => `1 sip:127.0.0.1:${p}${param}\n`).join(""));
  const kamailio = await runKamailio(
    new URL("../../deploy/kamailio/kamailio.cfg", import.meta.url).pathname,
    dir,
    [
      `LISTEN_UDP=udp:127.0.0.1:${port}`,
      `LISTEN_TCP=tcp:127.0.0.1:${port}`,
      `DISPATCHER_LIST="${list}"`,
      `PING_INTERVAL=${options.pingInterval ?? 1}`,
      `FR_TIMER_MS=${options.frTimerMs ?? 1000}`,
      "WORKERS=2",
    ],
  );
  // The first probes mark the instances up.
  await new Promise((r) => setTimeout(r, 1000 * (options.pingInterval ?? 1)));
  return { ...kamailio, port };
}
