/**
 * What SIP over TCP and over TLS share (RFC 3261 section 18): a table of connections,
 * each read through a `StreamFramer` (Content-Length framing, section 18.3; RFC 5626
 * section 4.4.1 CRLF keep-alive answered with one CRLF), and the limits that keep a
 * hostile or broken peer from costing anyone else:
 * - the allowlist and the connection limits (in total, per source address) at accept;
 * - an idle timeout, and a shorter one for a message begun and not finished (a
 *   half-sent message held open) or a connection that never sends a whole message;
 * - a bound on bytes queued for a peer that does not read.
 *
 * Responses go back on the connection their request came on (section 18.2.2); when it
 * is gone, and for requests we send, an open connection to the destination is reused
 * or a new one opened. `transport_tcp.ts` and `transport_tls.ts` supply the sockets.
 */
import { realClock } from "./clock.ts";
import type { CancelTimer, Clock } from "./clock.ts";
import { DEFAULT_FRAMER_LIMITS, type FramerLimits, StreamFramer } from "./stream_framer.ts";
import type { Datagram, SipAddress, SipTransport } from "./transport.ts";

/** One connection's bytes, as the TCP or TLS file opens or accepts it. */
export interface StreamSocket {
  /** The peer's address and port. */
  readonly remote: { readonly hostname: string; readonly port: number };
  /**
   * Starts reading. `onData` gets each chunk (valid only during the call); `onClose`
   * is called once, when the peer or we end the connection or it fails.
   */
  start(onData: (chunk: Uint8Array) => void, onClose: () => void): void;
  /** Queues bytes after those queued before; resolves when written. */
  write(bytes: Uint8Array): Promise<void>;
  /** Bytes queued and not yet written. */
  readonly pendingBytes: number;
  /** Ends the connection once what is queued is written. Idempotent. */
  close(): void;
}

export interface StreamLimits extends FramerLimits {
  /** Connections open at once, accepted and opened by us. */
  readonly maxConnections: number;
  /** Accepted connections from one source address. */
  readonly maxConnectionsPerSource: number;
  /** A connection with no bytes in either direction this long is closed. */
  readonly idleTimeoutMs: number;
  /**
   * A message begun must arrive whole this long after its first byte, and an accepted
   * connection must bring its first whole message (or ping) this long after accept.
   */
  readonly messageTimeoutMs: number;
  /** Bytes queued for a peer that does not read before its connection is closed. */
  readonly maxPendingWriteBytes: number;
  /** How long opening a connection may take. */
  readonly connectTimeoutMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  ...DEFAULT_FRAMER_LIMITS,
  maxConnections: 10_000,
  maxConnectionsPerSource: 256,
  idleTimeoutMs: 300_000,
  messageTimeoutMs: 10_000,
  maxPendingWriteBytes: 1024 * 1024,
  connectTimeoutMs: 5_000,
};

/** Why a connection was refused at accept. */
export type ConnectionRefusal = "not_allowed" | "connection_limit" | "source_limit";
/** Why we closed a connection the peer had not closed. */
export type ConnectionClosure = "idle_timeout" | "message_timeout" | "framing" | "write_backlog";

/** What an operator reads from /metrics. */
export interface StreamCounters {
  accepted: number;
  opened: number;
  readonly refused: Record<ConnectionRefusal, number>;
  readonly closed: Record<ConnectionClosure, number>;
}

export interface StreamTransportOptions {
  readonly limits?: Partial<StreamLimits>;
  /** Source addresses that may connect; others are closed at accept. Unset: all. */
  readonly allows?: (hostname: string) => boolean;
  readonly clock?: Clock;
}

const CRLF = new Uint8Array([13, 10]);
const EMPTY = new Uint8Array(0);

class Connection {
  readonly framer: StreamFramer;
  /** The address messages from this connection carry as their source. */
  readonly source: SipAddress;
  lastActivity: number;
  /** When the bytes of an unfinished message (or an accepted connection's wait for its first) began. */
  waitingSince: number | undefined;
  closing = false;

  constructor(
    readonly id: number,
    readonly socket: StreamSocket,
    readonly accepted: boolean,
    protocol: "TCP" | "TLS",
    limits: FramerLimits,
    now: number,
  ) {
    this.framer = new StreamFramer(limits);
    this.source = { ...socket.remote, transport: protocol, connection: id };
    this.lastActivity = now;
    this.waitingSince = accepted ? now : undefined;
  }
}

function addressKey(address: { hostname: string; port: number }): string {
  return `${address.hostname.toLowerCase()}|${address.port}`;
}

export abstract class StreamTransport implements SipTransport {
  abstract readonly protocol: "TCP" | "TLS";
  readonly reliable = true;
  abstract readonly local: SipAddress;
  readonly counters: StreamCounters = {
    accepted: 0,
    opened: 0,
    refused: { not_allowed: 0, connection_limit: 0, source_limit: 0 },
    closed: { idle_timeout: 0, message_timeout: 0, framing: 0, write_backlog: 0 },
  };
  protected readonly limits: StreamLimits;
  readonly #allows: ((hostname: string) => boolean) | undefined;
  readonly #clock: Clock;
  readonly #connections = new Map<number, Connection>();
  /** The newest connection to or from each address, for reuse. */
  readonly #byAddress = new Map<string, Connection>();
  readonly #connecting = new Map<string, Promise<Connection>>();
  readonly #perSource = new Map<string, number>();
  #nextId = 1;
  #deliver: ((message: Datagram) => void) | undefined;
  #sweep: CancelTimer | undefined;
  #closed = false;
  #served: PromiseWithResolvers<void> = Promise.withResolvers();

  protected constructor(options: StreamTransportOptions) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...options.limits };
    this.#allows = options.allows;
    this.#clock = options.clock ?? realClock;
  }

  /** Starts accepting connections (the socket file's accept loop); resolves when closed. */
  protected abstract accept(): Promise<void>;
  /** Opens a connection to `destination` within `limits.connectTimeoutMs`. */
  protected abstract connect(destination: SipAddress): Promise<StreamSocket>;
  /** Stops listening. */
  protected abstract closeListener(): void;

  /** Connections open now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  serve(deliver: (message: Datagram) => void): Promise<void> {
    this.#deliver = deliver;
    this.#armSweep();
    this.accept().catch(() => {}).finally(() => this.close());
    return this.#served.promise;
  }

  /**
   * An accepted connection: kept, or closed at once when its source is not allowed or
   * a limit is reached (counted, never answered: a scanner learns nothing).
   */
  protected adopt(socket: StreamSocket): void {
    const refusal = this.#refusal(socket.remote.hostname);
    if (refusal !== undefined) {
      this.counters.refused[refusal]++;
      socket.close();
      return;
    }
    this.counters.accepted++;
    const source = socket.remote.hostname.toLowerCase();
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1);
    this.#add(socket, true);
  }

  /** Whether a source address may open one more connection now; a refusal is counted. */
  protected admits(hostname: string): boolean {
    const refusal = this.#refusal(hostname);
    if (refusal !== undefined) this.counters.refused[refusal]++;
    return refusal === undefined;
  }

  #refusal(hostname: string): ConnectionRefusal | undefined {
    if (this.#closed) return "connection_limit";
    if (this.#allows !== undefined && !this.#allows(hostname)) return "not_allowed";
    if (this.#connections.size >= this.limits.maxConnections) return "connection_limit";
    if ((this.#perSource.get(hostname.toLowerCase()) ?? 0) >= this.limits.maxConnectionsPerSource) {
      return "source_limit";
    }
    return undefined;
  }

  #add(socket: StreamSocket, accepted: boolean): Connection {
    const conn = new Connection(
      this.#nextId++,
      socket,
      accepted,
      this.protocol,
      this.limits,
      this.#clock.now(),
    );
    this.#connections.set(conn.id, conn);
    this.#byAddress.set(addressKey(socket.remote), conn);
    socket.start((chunk) => this.#received(conn, chunk), () => this.#forget(conn));
    return conn;
  }

  #received(conn: Connection, chunk: Uint8Array): void {
    if (conn.closing) return;
    const now = this.#clock.now();
    conn.lastActivity = now;
    const frames = conn.framer.push(chunk);
    for (const frame of frames) {
      if (frame.kind === "message") {
        conn.waitingSince = undefined;
        this.#deliver?.({ bytes: frame.bytes, source: conn.source });
      } else if (frame.kind === "ping") {
        conn.waitingSince = undefined;
        conn.socket.write(CRLF).catch(() => {});
      } else {
        // Delivered so the endpoint counts it and answers a request it can route; the
        // answer is queued on this connection before it closes.
        this.#deliver?.({
          bytes: frame.header ?? EMPTY,
          source: conn.source,
          refused: { status: frame.status, reason: frame.reason },
        });
        if (frame.close) this.#close(conn, "framing");
      }
    }
    if (conn.framer.buffered > 0) conn.waitingSince ??= now;
    else if (!conn.accepted || frames.length > 0) conn.waitingSince = undefined;
  }

  async send(bytes: Uint8Array, destination: SipAddress): Promise<void> {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.protocol} transport is closed`);
    let conn = destination.connection === undefined
      ? undefined
      : this.#connections.get(destination.connection);
    if (conn === undefined || conn.closing) conn = await this.#connectionTo(destination);
    if (conn.socket.pendingBytes + bytes.length > this.limits.maxPendingWriteBytes) {
      this.#close(conn, "write_backlog");
      throw new Deno.errors.ConnectionReset(`${this.protocol} peer is not reading`);
    }
    await conn.socket.write(bytes);
    conn.lastActivity = this.#clock.now();
  }

  /** An open connection to the address (reused), or a new one; concurrent sends share one attempt. */
  #connectionTo(destination: SipAddress): Promise<Connection> {
    const key = addressKey(destination);
    const open = this.#byAddress.get(key);
    if (open !== undefined && !open.closing) return Promise.resolve(open);
    const pending = this.#connecting.get(key);
    if (pending !== undefined) return pending;
    if (this.#connections.size >= this.limits.maxConnections) {
      return Promise.reject(new Deno.errors.ConnectionRefused("SIP connection limit reached"));
    }
    const attempt = this.connect(destination).then((socket) => {
      if (this.#closed) {
        socket.close();
        throw new Deno.errors.BadResource(`${this.protocol} transport is closed`);
      }
      this.counters.opened++;
      return this.#add(socket, false);
    }).finally(() => this.#connecting.delete(key));
    this.#connecting.set(key, attempt);
    return attempt;
  }

  #close(conn: Connection, reason: ConnectionClosure): void {
    if (conn.closing) return;
    conn.closing = true;
    this.counters.closed[reason]++;
    conn.socket.close();
  }

  /** The socket ended (either side): the connection leaves every table, once. */
  #forget(conn: Connection): void {
    conn.closing = true;
    if (this.#connections.get(conn.id) !== conn) return;
    this.#connections.delete(conn.id);
    const key = addressKey(conn.socket.remote);
    if (this.#byAddress.get(key) === conn) this.#byAddress.delete(key);
    if (conn.accepted) {
      const source = conn.socket.remote.hostname.toLowerCase();
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left > 0) this.#perSource.set(source, left);
      else this.#perSource.delete(source);
    }
  }

  /** One timer for every connection's timeouts, every second or so. */
  #armSweep(): void {
    const every = Math.max(
      50,
      Math.min(1000, this.limits.messageTimeoutMs / 4, this.limits.idleTimeoutMs / 4),
    );
    this.#sweep = this.#clock.setTimer(every, () => {
      this.#sweep = undefined;
      if (this.#closed) return;
      const now = this.#clock.now();
      for (const conn of this.#connections.values()) {
        if (conn.closing) continue;
        if (conn.waitingSince !== undefined && now - conn.waitingSince >= this.limits.messageTimeoutMs) {
          this.#close(conn, "message_timeout");
        } else if (now - conn.lastActivity >= this.limits.idleTimeoutMs) {
          this.#close(conn, "idle_timeout");
        }
      }
      this.#armSweep();
    });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#sweep?.();
      this.#sweep = undefined;
      this.closeListener();
      for (const conn of this.#connections.values()) conn.socket.close();
      this.#served.resolve();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
