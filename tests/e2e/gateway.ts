// The platform's gateway for tests: Kamailio with deploy/kamailio/kamailio.cfg as
// shipped, its operator settings given as defines (loopback ports, short probe timers).
import { freeUdpPort, waitFor } from "./harness.ts";

export interface GatewayOptions {
  /** OPTIONS probe interval, s. */
  readonly pingInterval?: number;
  /** Wait for an instance's first answer before failing over, ms. */
  readonly frTimerMs?: number;
}

export interface Gateway {
  /** Where callers send (UDP and TCP). */
  readonly port: number;
  readonly pid: number;
  readonly log: string[];
  stop(): Promise<void>;
}

/** Starts Kamailio in front of the instances at 127.0.0.1:`ports` (dispatcher set 1). */
export async function startGateway(ports: readonly number[], options: GatewayOptions = {}): Promise<Gateway> {
  const port = freeUdpPort();
  const dir = await Deno.makeTempDir({ prefix: "gateway-" });
  const list = `${dir}/dispatcher.list`;
  await Deno.writeTextFile(list, ports.map((p) => `1 sip:127.0.0.1:${p}\n`).join(""));
  const cfg = new URL("../../deploy/kamailio/kamailio.cfg", import.meta.url).pathname;
  const child = new Deno.Command("kamailio", {
    args: [
      "-f",
      cfg,
      "-DD",
      "-E",
      "-Y",
      dir,
      "-m",
      "64",
      "-M",
      "8",
      "-A",
      `LISTEN_UDP=udp:127.0.0.1:${port}`,
      "-A",
      `LISTEN_TCP=tcp:127.0.0.1:${port}`,
      "-A",
      `DISPATCHER_LIST="${list}"`,
      "-A",
      `PING_INTERVAL=${options.pingInterval ?? 1}`,
      "-A",
      `FR_TIMER_MS=${options.frTimerMs ?? 1000}`,
      "-A",
      "WORKERS=2",
    ],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const log: string[] = [];
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log.push(chunk);
  })();
  await waitFor(() => log.join("").includes("INFO") || undefined, 3000);
  // The first probes mark the instances up.
  await new Promise((r) => setTimeout(r, 300 + 1000 * (options.pingInterval ?? 1)));
  return {
    port,
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
