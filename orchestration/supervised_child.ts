/**
 * A helper process that may die without taking the SIP service and its calls with it:
 * Deno 2.9's `node:http2` can abort the whole process inside nghttp2 when a peer sends
 * GOAWAY (denoland/deno#36788), so everything grpc-js does runs in such processes
 * (the TerminateCall server, `signaling_relay.ts`; the backend clients,
 * `upstreams_process.ts`).
 *
 * Parent and child speak newline-delimited JSON over a loopback TCP connection the
 * child opens (its stdin carries the port and a token): the parent sends one
 * configuration line, the child answers `{"t":"ready",...}` (or `{"t":"error","message"}`),
 * then both exchange their own messages. A child that dies is logged, counted and started
 * again (at once, then after a backoff growing to 5 s while it keeps dying); it ends by
 * itself when the connection closes.
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["orchestration", "child"]);

const RESTART_BACKOFF_MS = { initial: 100, max: 5000 } as const;
/** A child that lived this long before dying restarts after the initial backoff again. */
const STABLE_AFTER_MS = 10_000;
/** How long a child may take to say `ready`. */
const READY_TIMEOUT_MS = 20_000;

/**
 * Newline-delimited JSON from a TCP connection, read into one reusable buffer. Not a
 * pipe through web streams: a message each way cost ~300 µs of CPU per round trip over
 * the child's stdin and stdout (a fresh 64 KiB chunk per read, stdin read on a blocking
 * thread), ~95 µs over loopback TCP read directly (bench: 20,000 paced round trips).
 */
export async function* connLines<T>(conn: Deno.Conn): AsyncGenerator<T> {
  const buffer = new Uint8Array(64 * 1024);
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      return; // Reset: the other process is gone.
    }
    if (n === null) return;
    buffered += decoder.decode(buffer.subarray(0, n), { stream: true });
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
 * Lines to a connection, several per write: what one turn of the event loop sends
 * leaves in one write (a write is a system call; one per message cost more than the
 * message). Writes stay in order and are written whole.
 */
export class LineWriter {
  readonly #conn: Deno.Conn;
  readonly #encoder = new TextEncoder();
  #queued = "";
  #scheduled = false;
  #broken = false;
  #writing: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
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
    const bytes = this.#encoder.encode(this.#queued);
    this.#queued = "";
    this.#writing = this.#writing.then(async () => {
      for (let offset = 0; offset < bytes.length && !this.#broken;) {
        offset += await this.#conn.write(bytes.subarray(offset));
      }
    }).catch(() => {
      this.#broken = true;
    });
  }

  /** Writes what is queued, then closes the connection. */
  async close(): Promise<void> {
    if (this.#queued !== "") this.#flush();
    await this.#writing;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** The first line a child reads on stdin: where to connect back, and the token that proves it. */
interface Hello {
  readonly port: number;
  readonly token: string;
}

/**
 * The child's end: reads the hello on stdin, connects back over loopback TCP and proves
 * itself with the token. `messages` starts with the configuration and ends when the
 * parent closes the connection or dies.
 */
export async function connectToParent<In>(): Promise<{ messages: AsyncGenerator<In>; out: LineWriter }> {
  const reader = Deno.stdin.readable.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("no hello from the parent");
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  const hello = JSON.parse(text.slice(0, text.indexOf("\n"))) as Hello;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: hello.port });
  conn.setNoDelay(true);
  const out = new LineWriter(conn);
  out.send({ t: "hello", token: hello.token });
  return { messages: connLines<In>(conn), out };
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
  const io = { stdin: "piped", stdout: "null", stderr: "inherit", env } as const;
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
  /** Open for the child's life; it only ever carries the hello. */
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly out: LineWriter;
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
    this.#running.out.send(message);
    return true;
  }

  async #spawn(): Promise<Running> {
    // The child connects back to a one-time loopback port and shows the token it got on
    // stdin; anyone else who connects there first is turned away.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const token = crypto.randomUUID();
    const child = childCommand(this.#spec.flag, this.#spec.module, this.#spec.env).spawn();
    const stdin = child.stdin.getWriter();
    const hello: Hello = { port: (listener.addr as Deno.NetAddr).port, token };
    void stdin.write(new TextEncoder().encode(`${JSON.stringify(hello)}\n`)).catch(() => {});
    const ready = Promise.withResolvers<{ conn: Deno.TcpConn; lines: AsyncGenerator<Lifecycle | Out> }>();
    const timer = setTimeout(() => ready.reject(new Error("not ready in time")), READY_TIMEOUT_MS);
    void child.status.then(() =>
      ready.reject(new Error(`the ${this.#spec.what} process ended before it was ready`))
    );
    void (async () => {
      for await (const conn of listener) {
        const lines = connLines<{ t: string; token?: string } | Lifecycle | Out>(conn);
        const first = (await lines.next()).value as { t?: string; token?: string } | undefined;
        if (first?.t === "hello" && first.token === token) {
          ready.resolve({ conn, lines: lines as AsyncGenerator<Lifecycle | Out> });
          return;
        }
        conn.close();
      }
    })().catch(() => {});
    let link: { conn: Deno.TcpConn; lines: AsyncGenerator<Lifecycle | Out> } | undefined;
    try {
      link = await ready.promise;
      link.conn.setNoDelay(true);
      const out = new LineWriter(link.conn);
      out.send(this.#spec.config);
      const first = (await link.lines.next()).value as Lifecycle | undefined;
      if (first?.t !== "ready") {
        throw new Error(
          first?.t === "error" ? first.message : `the ${this.#spec.what} process did not start`,
        );
      }
      void this.#read(child, link.lines);
      return { child, stdin, out, ready: first };
    } catch (error) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      link?.conn.close();
      throw error;
    } finally {
      clearTimeout(timer);
      try {
        listener.close();
      } catch {
        // Leaving the accept loop closed it already.
      }
    }
  }

  async #read(child: Deno.ChildProcess, lines: AsyncGenerator<Lifecycle | Out>): Promise<void> {
    for await (const message of lines) {
      // A restarted child's messages may come before it is adopted (the gap after `ready`).
      const current = this.#running?.child;
      if (current === undefined || current === child) this.#spec.onMessage(message as Out);
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
        await SupervisedChild.#stop(running);
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

  /** Closes the child's connection and stdin: it ends by itself. */
  static async #stop(running: Running): Promise<void> {
    await running.out.close();
    await running.stdin.close().catch(() => {});
  }

  /** Stops the child (its connection closes and it ends) and waits for it; SIGKILL after 2 s. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    const running = this.#running;
    if (running === undefined) return;
    await SupervisedChild.#stop(running);
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
