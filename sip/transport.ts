/**
 * The transport seen by the stack: datagrams in and out, nothing SIP-specific.
 * `transport_udp.ts` is the one implementation over sockets; tests use an in-memory one.
 */

/** An IP address (v4 or v6, no brackets) and port. */
export interface SipAddress {
  readonly hostname: string;
  readonly port: number;
}

export interface Datagram {
  readonly bytes: Uint8Array;
  readonly source: SipAddress;
}

export interface SipTransport extends AsyncDisposable {
  /** "UDP" for the Via transport token. */
  readonly protocol: string;
  /** Where we listen (the port actually bound). */
  readonly local: SipAddress;
  /** Sends one datagram; rejects on a transport error (RFC 3261 section 18.4). */
  send(bytes: Uint8Array, destination: SipAddress): Promise<void>;
  /** Datagrams as they arrive; ends when the transport is closed. */
  receive(): AsyncIterable<Datagram>;
  /** Stops receiving and releases the socket. Idempotent. */
  close(): Promise<void>;
}

/** Writes an address for a Via sent-by or URI host: IPv6 in brackets. */
export function formatHost(hostname: string): string {
  return hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
}

/** Strips IPv6 brackets. */
export function bareHost(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
