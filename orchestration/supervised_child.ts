/**
 * A helper process that may die without taking the SIP service and its calls with it:
 * Deno 2.9's `node:http2` can abort the whole process inside nghttp2 when a peer sends
 * GOAWAY (denoland/deno#36788), so everything grpc-js does runs in such processes
 * (the TerminateCall server, `signaling_relay.ts`; the backend clients,
 * `upstreams_process.ts`).
 *
 * Parent and child speak newline-delimited JSON over the child's stdin and stdout: the
 * parent sends one configuration line, the child answers `{"t":"ready",...}` (or
 * `{"t":"error","message"}`), then both exchange their own messages. A child that dies
 * is logged, counted and started again (at once, then after a backoff growing to 5 s
 * while it keeps dying); it ends by itself when its stdin closes.
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["orchestration", "child"]);

const RESTART_BACKOFF_MS = { initial: 100, max: 5000 } as const;
/** A child that lived this long before dying restarts after the initial backoff again. */
const STABLE_AFTER_MS = 10_000;
/** How long a child may take to say `ready`. */
const READY_TIMEOUT_MS = 20_000;

/** Newline-delimited JSON from a byte stream. */
export async function* jsonLines<T>(stream: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let start = 0;
    let nl;
    while ((nl = buffered.indexOf("\n", start)) !== -1) {
      const line = buffered.slice(start, nl);
      start = nl + 1;
      if (line.trim() !== "") yield JSON.parse(line) as T;
    }
    buffered = buffered.slice(start);
  }
}

/**
 * Lines to a byte stream, several per write: what one turn of the event loop sends
 * leaves in one write (a pipe write is a system call; one per message cost more than
 * the message).
 */
export class LineWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  #queued = "";
  #scheduled = false;
  #broken = false;

  constructor(writable: WritableStream<Uint8Array>) {
    this.#writer = writable.getWriter();
  }

  send(message: unknown): void {
    if (this.#broken) return;
    this.#queued += `${JSON.stringify(message)}\n`;
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const text = this.#queued;
    this.#queued = "";
    this.#writer.write(this.#encoder.encode(text)).catch(() => this.#broken = true);
  }

  async close(): Promise<void> {
    if (this.#queued !== "") this.#flush();
    await this.#writer.close().catch(() => {});
  }
}

/** The first line of a child: its ready message (with what it reports), or its error. */
export type ReadyMessage = { t: "ready" } & Record<string, unknown>;
type Lifecycle = ReadyMessage | { t: "error"; message: string };

export interface ChildSpec<Out> {
  /** What the child is, for log lines ("TerminateCall", "gRPC client"). */
  readonly what: string;
  /** The internal flag the compiled binary runs this child with. */
  readonly flag: string;
  /** The child's module, run under `deno run` (outside the compiled binary). */
  readonly module: URL;
  /** Environment variables set for the child (beside the service's own). */
  readonly env?: Record<string, string>;
  /** The configuration line sent first. */
  readonly config: unknown;
  /** Every message after `ready`. */
  readonly onMessage: (message: Out) => void;
  /** A child is running and ready (`ready` is its first line), the first one or a restart. */
  readonly onReady?: (ready: ReadyMessage, pid: number) => void;
  /** The running child died (it is restarted after this). */
  readonly onExit?: () => void;
}

function childCommand(flag: string, module: URL, env: Record<string, string> = {}): Deno.Command {
  const io = { stdin: "piped", stdout: "piped", stderr: "inherit", env } as const;
  if (Deno.build.standalone) {
    // The compiled binary runs itself; main.ts hands the flag to the child's code.
    return new Deno.Command(Deno.execPath(), { args: [flag], ...io });
  }
  // `deno run`: the same permission set as the service, from the project's deno.json.
  return new Deno.Command("deno", {
    args: [
      "run",
      "-P=service",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      module.pathname,
    ],
    ...io,
  });
}

interface Running {
  readonly child: Deno.ChildProcess;
  readonly stdin: LineWriter;
  readonly ready: ReadyMessage;
}

/** One supervised child process: started, restarted when it dies, stopped by `close`. */
export class SupervisedChild<In, Out> {
  /** Times the child died and was started again. */
  restarts = 0;
  readonly #spec: ChildSpec<Out>;
  #running: Running | undefined;
  #closing = false;
  #backoffMs: number = RESTART_BACKOFF_MS.initial;
  #startedAt = Date.now();
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #exited: Promise<unknown> = Promise.resolve();

  private constructor(spec: ChildSpec<Out>) {
    this.#spec = spec;
  }

  /** Starts the child and waits for its `ready`; rejects with the child's own words if it fails. */
  static async start<In, Out>(spec: ChildSpec<Out>): Promise<SupervisedChild<In, Out>> {
    const supervisor = new SupervisedChild<In, Out>(spec);
    supervisor.#adopt(await supervisor.#spawn());
    return supervisor;
  }

  /** What the running child said when it became ready. */
  get ready(): ReadyMessage | undefined {
    return this.#running?.ready;
  }

  get pid(): number | undefined {
    return this.#running?.child.pid;
  }

  /** Sends a message to the running child; false while none runs (it is being restarted). */
  send(message: In): boolean {
    if (this.#running === undefined) return false;
    this.#running.stdin.send(message);
    return true;
  }

  async #spawn(): Promise<Running> {
    const child = childCommand(this.#spec.flag, this.#spec.module, this.#spec.env).spawn();
    const stdin = new LineWriter(child.stdin);
    stdin.send(this.#spec.config);
    const ready = Promise.withResolvers<ReadyMessage>();
    const timer = setTimeout(() => ready.reject(new Error("not ready in time")), READY_TIMEOUT_MS);
    void (async () => {
      let isReady = false;
      try {
        for await (const message of jsonLines<Lifecycle | Out>(child.stdout)) {
          if (isReady) {
            // A restarted child's messages may come before it is adopted (the gap after `ready`).
            const current = this.#running?.child;
            if (current === undefined || current === child) this.#spec.onMessage(message as Out);
          } else if ((message as Lifecycle).t === "ready") {
            isReady = true;
            ready.resolve(message as ReadyMessage);
          } else if ((message as Lifecycle).t === "error") {
            ready.reject(new Error((message as { message: string }).message));
          }
        }
      } catch (error) {
        ready.reject(error);
      }
      ready.reject(new Error(`the ${this.#spec.what} process ended before it was ready`));
    })();
    try {
      const message = await ready.promise;
      return { child, stdin, ready: message };
    } catch (error) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #adopt(running: Running): void {
    this.#running = running;
    this.#startedAt = Date.now();
    this.#exited = this.#watch(running.child);
    this.#spec.onReady?.(running.ready, running.child.pid);
  }

  /** Restarts the child whenever it dies, unless we are closing. */
  async #watch(child: Deno.ChildProcess): Promise<void> {
    const status = await child.status;
    if (this.#closing || child !== this.#running?.child) return;
    this.#running = undefined;
    this.restarts++;
    if (Date.now() - this.#startedAt > STABLE_AFTER_MS) this.#backoffMs = RESTART_BACKOFF_MS.initial;
    log.error("The {what} process died ({how}); starting it again in {ms} ms", {
      what: this.#spec.what,
      how: status.signal === null ? `exit ${status.code}` : `signal ${status.signal}`,
      ms: this.#backoffMs,
      restarts: this.restarts,
    });
    this.#spec.onExit?.();
    this.#schedule();
  }

  async #restart(): Promise<void> {
    this.#restartTimer = undefined;
    if (this.#closing) return;
    const startedAt = Date.now();
    try {
      const running = await this.#spawn();
      if (this.#closing) {
        await running.stdin.close();
        return;
      }
      this.#adopt(running);
      log.info("The {what} process runs again as {pid}", {
        what: this.#spec.what,
        pid: running.child.pid,
        ms: Date.now() - startedAt,
      });
    } catch (error) {
      log.error("The {what} process did not start: {error}; again in {ms} ms", {
        what: this.#spec.what,
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

  /** Stops the child (its stdin closes and it ends) and waits for it; SIGKILL after 2 s. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    const running = this.#running;
    if (running === undefined) return;
    await running.stdin.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), 2000)),
    ]).finally(() => clearTimeout(timer));
    if (!exited) {
      try {
        running.child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await running.child.status;
  }
}
