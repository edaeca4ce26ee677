/**
 * SIP over TCP (RFC 3261 section 18) on `Deno.listen` / `Deno.connect`: the only file
 * that touches TCP sockets. Listens on the same address and port as UDP (section
 * 18.1.1 lets any request move to TCP). Framing, limits and the connection table are
 * `transport_stream.ts`.
 */
import type { SipAddress } from "./transport.ts";
import { type StreamLimits, type StreamSocket, StreamTransport } from "./transport_stream.ts";

export interface TcpTransportOptions {
  readonly hostname: string;
  /** 0 picks a free one. */
  readonly port: number;
  readonly limits?: Partial<StreamLimits>;
  readonly allows?: (hostname: string) => boolean;
}

/**
 * Bytes read per `read`: one buffer per connection, reused. 8 KiB holds a usual INVITE;
 * a 4.5 KB carrier INVITE with STIR/SHAKEN takes one or two reads.
 */
const READ_BUFFER_BYTES = 8 * 1024;

/** A `Deno.Conn` as a `StreamSocket`: one read loop, writes queued in order and written whole. */
export class DenoStreamSocket implements StreamSocket {
  readonly remote: { hostname: string; port: number };
  readonly #conn: Deno.Conn;
  readonly #queue: { bytes: Uint8Array; done: PromiseWithResolvers<void> }[] = [];
  #pending = 0;
  #writing = false;
  #closeWhenWritten = false;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const remote = conn.remoteAddr as Deno.NetAddr;
    this.remote = { hostname: unmapped(remote.hostname), port: remote.port };
  }

  get pendingBytes(): number {
    return this.#pending;
  }

  start(onData: (chunk: Uint8Array) => void, onClose: () => void): void {
    (async () => {
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      try {
        for (;;) {
          const n = await this.#conn.read(buffer);
          if (n === null) break;
          onData(buffer.subarray(0, n));
        }
      } catch {
        // Reset by the peer, or closed by us: the same end.
      } finally {
        this.#destroy();
        onClose();
      }
    })();
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed || this.#closeWhenWritten) {
      return Promise.reject(new Deno.errors.BadResource("connection closed"));
    }
    const done = Promise.withResolvers<void>();
    this.#queue.push({ bytes, done });
    this.#pending += bytes.length;
    if (!this.#writing) this.#drain();
    return done.promise;
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) {
      const item = this.#queue[0]!;
      try {
        let offset = 0;
        while (offset < item.bytes.length) offset += await this.#conn.write(item.bytes.subarray(offset));
      } catch (error) {
        for (const queued of this.#queue.splice(0)) queued.done.reject(error);
        this.#pending = 0;
        this.#writing = false;
        this.#destroy();
        return;
      }
      this.#queue.shift();
      this.#pending -= item.bytes.length;
      item.done.resolve();
    }
    this.#writing = false;
    if (this.#closeWhenWritten) this.#destroy();
  }

  close(): void {
    if (this.#writing) this.#closeWhenWritten = true;
    else this.#destroy();
  }

  #destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** `::ffff:192.0.2.1` (an IPv4 peer on a dual-stack socket) as `192.0.2.1`. */
export function unmapped(hostname: string): string {
  return hostname.toLowerCase().startsWith("::ffff:") && hostname.includes(".")
    ? hostname.slice(7)
    : hostname;
}

export class TcpTransport extends StreamTransport {
  readonly protocol = "TCP";
  readonly local: SipAddress;
  readonly #listener: Deno.TcpListener;

  private constructor(listener: Deno.TcpListener, options: TcpTransportOptions) {
    super({
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.allows === undefined ? {} : { allows: options.allows }),
    });
    this.#listener = listener;
    const addr = listener.addr;
    this.local = { hostname: addr.hostname, port: addr.port, transport: "TCP" };
  }

  static listen(options: TcpTransportOptions): TcpTransport {
    return new TcpTransport(Deno.listen({ hostname: options.hostname, port: options.port }), options);
  }

  protected async accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) return;
        // EMFILE and the like: this connection is lost, the listener is not; a pause
        // keeps a process out of file descriptors from spinning here.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      conn.setNoDelay(true);
      this.adopt(new DenoStreamSocket(conn));
    }
  }

  protected async connect(destination: SipAddress): Promise<StreamSocket> {
    const conn = await Deno.connect({
      hostname: destination.hostname,
      port: destination.port,
      signal: AbortSignal.timeout(this.limits.connectTimeoutMs),
    });
    conn.setNoDelay(true);
    return new DenoStreamSocket(conn);
  }

  protected closeListener(): void {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }
}
