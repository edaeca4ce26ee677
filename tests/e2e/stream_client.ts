// A raw SIP-over-TCP (or TLS) peer for tests: writes bytes exactly as told (split,
// joined, held half-sent) and reads back whole messages framed by Content-Length.
import type { Socket } from "node:net";
import { StreamFramer } from "../../sip/mod.ts";
import { optionsRequest as harnessOptions } from "./harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message read off the stream, as text, or "PONG" for a keep-alive answer. */
export type StreamReply = string;

export class SipStreamClient implements AsyncDisposable {
  readonly #conn: Deno.Conn;
  readonly #framer = new StreamFramer({ maxHeaderBytes: 1 << 20, maxBodyBytes: 1 << 20 });
  readonly #replies: StreamReply[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #pongs = 0;
  readonly ended: Promise<void>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.ended = this.#read();
  }

  static async connect(port: number, hostname = "127.0.0.1", from?: string): Promise<SipStreamClient> {
    const conn = from === undefined
      ? await Deno.connect({ hostname, port })
      : await connectFrom(hostname, port, from);
    return new SipStreamClient(conn);
  }

  /** Wraps a connection already open (a TLS one, or one accepted by a test listener). */
  static over(conn: Deno.Conn): SipStreamClient {
    return new SipStreamClient(conn);
  }

  get local(): Deno.NetAddr {
    return this.#conn.localAddr as Deno.NetAddr;
  }

  /** True once the far end closed the connection (or it failed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** CRLF pongs received (RFC 5626 keep-alive answers). */
  get pongs(): number {
    return this.#pongs;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const chunk = buffer.subarray(0, n);
        // A pong is one CRLF between messages; the framer ignores a lone CRLF.
        if (n === 2 && chunk[0] === 13 && chunk[1] === 10 && this.#framer.buffered === 0) this.#pongs++;
        for (const frame of this.#framer.push(chunk)) {
          if (frame.kind === "message") this.#replies.push(decoder.decode(frame.bytes));
        }
        this.#wake();
      }
    } catch {
      // Reset: the same as closed for a test.
    } finally {
      this.#closed = true;
      this.#wake();
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  /** The next message whose text matches `pattern` (taken off the queue), or undefined after `ms`. */
  async next(pattern: RegExp = /./, ms = 5000): Promise<string | undefined> {
    const until = Date.now() + ms;
    for (;;) {
      const i = this.#replies.findIndex((r) => pattern.test(r));
      if (i >= 0) return this.#replies.splice(i, 1)[0];
      const left = until - Date.now();
      if (left <= 0 || this.#closed) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Waits until the far end closes the connection; false if it has not after `ms`. */
  async waitClosed(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      this.ended.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
    clearTimeout(timer);
    return closed;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.ended;
  }
}

/** `Deno.connect` cannot choose the source address; a test connecting from 127.0.0.2 uses node:net. */
async function connectFrom(hostname: string, port: number, from: string): Promise<Deno.Conn> {
  const net = await import("node:net");
  const socket = net.connect({ host: hostname, port, localAddress: from });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return nodeSocketAsConn(socket);
}

/** Enough of Deno.Conn over a node socket for SipStreamClient. */
export function nodeSocketAsConn(socket: Socket): Deno.Conn {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  socket.on("data", (d: Uint8Array) => {
    chunks.push(new Uint8Array(d));
    wake?.();
  });
  const finish = () => {
    ended = true;
    wake?.();
  };
  socket.on("end", finish);
  socket.on("close", finish);
  socket.on("error", finish);
  const conn = {
    localAddr: { transport: "tcp", hostname: socket.localAddress, port: socket.localPort },
    remoteAddr: { transport: "tcp", hostname: socket.remoteAddress, port: socket.remotePort },
    async read(buffer: Uint8Array): Promise<number | null> {
      while (chunks.length === 0) {
        if (ended) return null;
        await new Promise<void>((r) => wake = r);
      }
      const chunk = chunks[0]!;
      const n = Math.min(buffer.length, chunk.length);
      buffer.set(chunk.subarray(0, n));
      if (n === chunk.length) chunks.shift();
      else chunks[0] = chunk.subarray(n);
      return n;
    },
    write(bytes: Uint8Array): Promise<number> {
      return new Promise((resolve, reject) =>
        socket.write(bytes, (e?: Error | null) => (e ? reject(e) : resolve(bytes.length)))
      );
    },
    close() {
      socket.destroy();
    },
  };
  return conn as unknown as Deno.Conn;
}

/** An OPTIONS request over a stream (TCP unless told), with Content-Length. */
export function optionsRequest(port: number, local: Deno.NetAddr, transport = "TCP", tag = "o"): string {
  return harnessOptions(port, local, transport, tag);
}
