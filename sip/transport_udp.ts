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

export class UdpTransport implements SipTransport {
  readonly protocol = "UDP";
  readonly local: SipAddress;
  #socket: Deno.DatagramConn;
  #closed = false;

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

  async *receive(): AsyncIterable<Datagram> {
    while (!this.#closed) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await this.#socket.receive();
      } catch (error) {
        if (this.#closed) return;
        // ICMP errors from an earlier send surface here on some systems: not fatal.
        if (error instanceof Deno.errors.ConnectionReset) continue;
        throw error;
      }
      const [bytes, addr] = received;
      const net = addr as Deno.NetAddr;
      yield { bytes, source: { hostname: net.hostname, port: net.port } };
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
