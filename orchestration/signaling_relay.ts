/**
 * Supervises the process that serves TerminateCall (`signaling_child.ts`) and answers
 * the calls it relays. If that process dies (an abusive HTTP/2 client can crash Deno's
 * `node:http2` server, denoland/deno#36788), the SIP service and its calls go on: the
 * death is logged and counted, and a new one binds the same port at once (then after
 * a backoff growing to 5 s while it keeps dying). The agent's gRPC client reconnects.
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import type { MutualTls } from "./grpc.ts";
import { type ChildMessage, jsonLines, type ParentMessage } from "./signaling_child.ts";

const log = getLogger(["orchestration", "signaling"]);

export interface Terminator {
  terminate(callId: string, reason: string): { success: boolean; message: string };
}

/** The internal flag the compiled binary runs its TerminateCall process with. */
export const SIGNALING_CHILD_FLAG = "--signaling-server-child";

const RESTART_BACKOFF_MS = { initial: 100, max: 5000 } as const;
/** A child that lived this long before dying restarts after the initial backoff again. */
const STABLE_AFTER_MS = 10_000;

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

function childCommand(): Deno.Command {
  const io = { stdin: "piped", stdout: "piped", stderr: "inherit" } as const;
  if (Deno.build.standalone) {
    // The compiled binary runs itself; main.ts hands the flag to the child's code.
    return new Deno.Command(Deno.execPath(), { args: [SIGNALING_CHILD_FLAG], ...io });
  }
  // `deno run`: the same permission set as the service, from the project's deno.json.
  return new Deno.Command("deno", {
    args: [
      "run",
      "-P=service",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      new URL("./signaling_child.ts", import.meta.url).pathname,
    ],
    ...io,
  });
}

export class SignalingServerProcess {
  /** The port TerminateCall listens on (as the first child bound it). */
  readonly port: number;
  /** Times the TerminateCall process died and was started again. */
  restarts = 0;
  readonly #terminator: Terminator;
  readonly #config: ParentMessage;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #closing = false;
  #backoffMs: number = RESTART_BACKOFF_MS.initial;
  #childStartedAt = Date.now();
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #exited: Promise<Deno.CommandStatus>;

  private constructor(
    terminator: Terminator,
    config: ParentMessage,
    started: { child: Deno.ChildProcess; stdin: WritableStreamDefaultWriter<Uint8Array>; port: number },
  ) {
    this.#terminator = terminator;
    this.#config = config;
    this.#child = started.child;
    this.#stdin = started.stdin;
    this.port = started.port;
    this.#exited = this.#watch(started.child);
  }

  /** Starts the TerminateCall process on `address`; rejects with its own words if it cannot bind. */
  static async start(
    terminator: Terminator,
    address: string,
    tls: MutualTls | undefined,
  ): Promise<SignalingServerProcess> {
    const config: ParentMessage = {
      t: "config",
      address,
      ...(tls === undefined
        ? {}
        : { tls: { cert: base64(tls.cert), key: base64(tls.key), ca: base64(tls.ca) } }),
    };
    // No call can be relayed before `ready`, and the constructor follows it at once.
    const self: { relay?: SignalingServerProcess } = {};
    const started = await SignalingServerProcess.#spawn(config, (message, stdin) => {
      if (self.relay !== undefined) self.relay.#answer(message, stdin);
    });
    const relay = new SignalingServerProcess(terminator, config, started);
    self.relay = relay;
    log.info("TerminateCall served by process {pid} on port {port}", {
      pid: started.child.pid,
      port: started.port,
    });
    return relay;
  }

  /** Spawns one child, sends its configuration and waits for `ready` (or its error). */
  static async #spawn(
    config: ParentMessage,
    onCall: (message: ChildMessage & { t: "call" }, stdin: WritableStreamDefaultWriter<Uint8Array>) => void,
  ): Promise<{ child: Deno.ChildProcess; stdin: WritableStreamDefaultWriter<Uint8Array>; port: number }> {
    const child = childCommand().spawn();
    const stdin = child.stdin.getWriter();
    await stdin.write(new TextEncoder().encode(`${JSON.stringify(config)}\n`));
    const ready = Promise.withResolvers<number>();
    void (async () => {
      try {
        for await (const message of jsonLines<ChildMessage>(child.stdout)) {
          if (message.t === "ready") ready.resolve(message.port);
          else if (message.t === "error") ready.reject(new Error(message.message));
          else onCall(message, stdin);
        }
      } catch (error) {
        ready.reject(error);
      }
      ready.reject(new Error("the TerminateCall process ended before it was ready"));
    })();
    try {
      return { child, stdin, port: await ready.promise };
    } catch (error) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      throw error;
    }
  }

  #answer(message: ChildMessage & { t: "call" }, stdin: WritableStreamDefaultWriter<Uint8Array>): void {
    let answer: { success: boolean; message: string };
    try {
      answer = this.#terminator.terminate(message.callId, message.reason);
    } catch (error) {
      answer = { success: false, message: error instanceof Error ? error.message : String(error) };
    }
    const line: ParentMessage = { t: "answer", id: message.id, ...answer };
    stdin.write(new TextEncoder().encode(`${JSON.stringify(line)}\n`)).catch(() => {});
  }

  /** Restarts the child whenever it dies, unless we are closing. */
  async #watch(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
    const status = await child.status;
    if (this.#closing || child !== this.#child) return status;
    this.restarts++;
    if (Date.now() - this.#childStartedAt > STABLE_AFTER_MS) this.#backoffMs = RESTART_BACKOFF_MS.initial;
    log.error("The TerminateCall process died ({how}); starting it again in {ms} ms", {
      how: status.signal === null ? `exit ${status.code}` : `signal ${status.signal}`,
      ms: this.#backoffMs,
      restarts: this.restarts,
    });
    this.#schedule();
    return status;
  }

  async #restart(): Promise<void> {
    this.#restartTimer = undefined;
    if (this.#closing) return;
    const startedAt = Date.now();
    try {
      const started = await SignalingServerProcess.#spawn(this.#config, (m, s) => this.#answer(m, s));
      if (this.#closing) {
        await started.stdin.close().catch(() => {});
        return;
      }
      this.#child = started.child;
      this.#stdin = started.stdin;
      this.#childStartedAt = Date.now();
      this.#exited = this.#watch(started.child);
      log.info("TerminateCall served by process {pid} on port {port} again", {
        pid: started.child.pid,
        port: started.port,
        ms: Date.now() - startedAt,
      });
    } catch (error) {
      log.error("The TerminateCall process did not start: {error}; again in {ms} ms", {
        error: error instanceof Error ? error.message : String(error),
        ms: this.#backoffMs,
      });
      this.#schedule();
    }
  }

  /** The next start after the current backoff, which doubles (to 5 s) while starts keep failing. */
  #schedule(): void {
    this.#restartTimer = setTimeout(() => void this.#restart(), this.#backoffMs);
    this.#backoffMs = Math.min(2 * this.#backoffMs, RESTART_BACKOFF_MS.max);
  }

  /** Stops the child (its stdin closes, it shuts its server down) and waits for it. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    await this.#stdin.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), 2000)),
    ]).finally(() => clearTimeout(timer));
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await this.#child.status;
    }
  }
}
