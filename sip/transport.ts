/**
 * The transport seen by the stack (RFC 3261 section 18): messages in and out, nothing
 * SIP-specific beyond framing. `transport_udp.ts`, `transport_tcp.ts` and
 * `transport_tls.ts` are the implementations over sockets (the two stream ones share
 * `transport_stream.ts`); tests use an in-memory one.
 */

/** The Via transport token of a transport we speak. */
export type TransportName = "UDP" | "TCP" | "TLS";

/**
 * An IP address (v4 or v6, no brackets) and port, and how to reach it. `transport`
 * absent means UDP. `connection` names the stream connection a message came on, so the
 * answer goes back on it (section 18.2.2); a closed one is replaced by a new connection
 * to the address.
 */
export interface SipAddress {
  readonly hostname: string;
  readonly port: number;
  readonly transport?: TransportName;
  readonly connection?: number;
}

/** One received message: a datagram, or one message framed out of a stream. */
export interface Datagram {
  readonly bytes: Uint8Array;
  readonly source: SipAddress;
  /**
   * Set when a stream could not frame the message (section 18.3): `bytes` then holds
   * its header section when that was read whole (to answer a request with `status`),
   * else nothing.
   */
  readonly refused?: { readonly status: 400 | 513; readonly reason: string };
}

export interface SipTransport extends AsyncDisposable {
  /** The Via transport token. */
  readonly protocol: TransportName;
  /**
   * True for stream transports: transactions then arm no retransmission timers
   * (sections 17.1.1.2, 17.2.1) and use zero for timers I, J and K.
   */
  readonly reliable: boolean;
  /** Where we listen (the port actually bound). */
  readonly local: SipAddress;
  /** Sends one message; rejects on a transport error (RFC 3261 section 18.4). */
  send(bytes: Uint8Array, destination: SipAddress): Promise<void>;
  /**
   * Delivers each received message to `deliver`, synchronously, in the order of its
   * connection; resolves when the transport is closed.
   */
  serve(deliver: (message: Datagram) => void): Promise<void>;
  /** Stops receiving and releases every socket. Idempotent. */
  close(): Promise<void>;
}

/** True when messages to `address` go over a stream (TCP or TLS). */
export function isReliable(address: SipAddress): boolean {
  return address.transport === "TCP" || address.transport === "TLS";
}

/** The port a sent-by or URI without one means (section 18.2.2, 19.1.2). */
export function defaultPort(transport: TransportName | undefined): number {
  return transport === "TLS" ? 5061 : 5060;
}

/** Writes an address for a Via sent-by or URI host: IPv6 in brackets. */
export function formatHost(hostname: string): string {
  return hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
}

/** Strips IPv6 brackets. */
export function bareHost(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
