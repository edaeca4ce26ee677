/**
 * UDP transport over `Deno.listenDatagram` (needs `--unstable-net`). The only file
 * that touches sockets. IPv4 or IPv6 per the listen address.
 */
import type { Datagram, SipAddress, SipTransport } from "./transport.ts";

export interface UdpTransportOptions {
  /** Listen address; "0.0.0.0", "::", "127.0.0.1", "::1"... */
  readonly hostname: string;
  /** Listen port; 0 picks a free one. */
  readonly port: number;
}

/** Largest UDP payload over IPv4 (65535 - 8 - 20). */
const MAX_DATAGRAM = 65507;

export class UdpTransport implements SipTransport {
  readonly protocol = "UDP";
  readonly reliable = false;
  readonly local: SipAddress;
  #socket: Deno.DatagramConn;
  #closed = false;
  /**
   * One receive buffer for the life of the socket. Without it `receive()` allocates a
   * zeroed 64 KiB buffer per datagram, and every parsed message would keep its own
   * alive for as long as its transaction (32 s after the final response on UDP).
   */
  readonly #buffer = new Uint8Array(MAX_DATAGRAM);

  private constructor(socket: Deno.DatagramConn) {
    this.#socket = socket;
    const addr = socket.addr as Deno.NetAddr;
    this.local = { hostname: addr.hostname, port: addr.port };
  }

  static listen(options: UdpTransportOptions): UdpTransport {
    return new UdpTransport(
      Deno.listenDatagram({ transport: "udp", hostname: options.hostname, port: options.port }),
    );
  }

  async send(bytes: Uint8Array, destination: SipAddress): Promise<void> {
    if (this.#closed) throw new Deno.errors.BadResource("UDP transport is closed");
    await this.#socket.send(bytes, {
      transport: "udp",
      hostname: destination.hostname,
      port: destination.port,
    });
  }

  async serve(deliver: (message: Datagram) => void): Promise<void> {
    while (!this.#closed) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await this.#socket.receive(this.#buffer);
      } catch (error) {
        if (this.#closed) return;
        // ICMP errors from an earlier send surface here on some systems: not fatal.
        if (error instanceof Deno.errors.ConnectionReset) continue;
        throw error;
      }
      const [view, addr] = received;
      const net = addr as Deno.NetAddr;
      // A copy of exactly the datagram: the buffer is reused by the next receive.
      deliver({ bytes: view.slice(), source: { hostname: net.hostname, port: net.port } });
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#socket.close();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
