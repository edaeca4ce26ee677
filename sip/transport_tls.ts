/**
 * SIP over TLS (RFC 3261 sections 18 and 26.2, `sips:`; RFC 5630) on `node:tls`: the
 * only file that touches TLS sockets. `node:tls` rather than `Deno.listenTls` because
 * only it verifies client certificates, which mutual TLS with the gateway needs.
 * TLS 1.2 or later. With a CA, a client must present a certificate it signed; the
 * same CA verifies the peer when we open a connection (a BYE after the gateway's
 * connection closed), and we present our certificate as the client's.
 */
import { Buffer } from "node:buffer";
import tls from "node:tls";
import type { SipAddress } from "./transport.ts";
import { type StreamLimits, type StreamSocket, StreamTransport } from "./transport_stream.ts";
import { unmapped } from "./transport_tcp.ts";

export interface TlsTransportOptions {
  readonly hostname: string;
  /** 0 picks a free one. */
  readonly port: number;
  /** PEM certificate chain and private key. */
  readonly cert: string;
  readonly key: string;
  /** PEM CA bundle: clients must present a certificate it signed (mutual TLS). */
  readonly ca?: string;
  readonly limits?: Partial<StreamLimits>;
  readonly allows?: (hostname: string) => boolean;
}

const MIN_VERSION = "TLSv1.2";
/** How long a graceful close may wait for the peer before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

/** A `node:tls` socket as a `StreamSocket`. */
class NodeTlsSocket implements StreamSocket {
  readonly remote: { hostname: string; port: number };
  readonly #socket: tls.TLSSocket;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    this.remote = { hostname: unmapped(socket.remoteAddress ?? "0.0.0.0"), port: socket.remotePort ?? 0 };
  }

  get pendingBytes(): number {
    return this.#socket.writableLength;
  }

  start(onData: (chunk: Uint8Array) => void, onClose: () => void): void {
    this.#socket.on(
      "data",
      (data: Buffer) => onData(new Uint8Array(data.buffer, data.byteOffset, data.length)),
    );
    this.#socket.on("error", () => {}); // "close" follows.
    this.#socket.once("close", () => {
      if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
      onClose();
    });
    if (this.#socket.destroyed) {
      queueMicrotask(onClose);
    }
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#socket.destroyed || this.#socket.writableEnded) {
      return Promise.reject(new Deno.errors.BadResource("connection closed"));
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    if (this.#socket.destroyed || this.#graceTimer !== undefined) return;
    this.#socket.end();
    this.#graceTimer = setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS);
  }
}

export class TlsTransport extends StreamTransport {
  readonly protocol = "TLS";
  readonly local: SipAddress;
  readonly #server: tls.Server;
  readonly #options: TlsTransportOptions;
  readonly #stopped = Promise.withResolvers<void>();

  private constructor(server: tls.Server, options: TlsTransportOptions) {
    super({
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.allows === undefined ? {} : { allows: options.allows }),
    });
    this.#server = server;
    this.#options = options;
    const addr = server.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : options.port;
    this.local = { hostname: options.hostname, port, transport: "TLS" };
  }

  static async listen(options: TlsTransportOptions): Promise<TlsTransport> {
    const verify = options.ca !== undefined;
    const server = tls.createServer({
      cert: options.cert,
      key: options.key,
      ...(verify ? { ca: options.ca, requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: MIN_VERSION,
      handshakeTimeout: options.limits?.messageTimeoutMs ?? 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return new TlsTransport(server, options);
  }

  protected accept(): Promise<void> {
    // Before the handshake: a source that may not connect costs no TLS work.
    this.#server.on("connection", (socket: { remoteAddress?: string; destroy(): void }) => {
      if (!this.admits(unmapped(socket.remoteAddress ?? ""))) socket.destroy();
    });
    this.#server.on("secureConnection", (socket: tls.TLSSocket) => this.adopt(new NodeTlsSocket(socket)));
    // A failed handshake (no or a foreign client certificate, TLS below 1.2) ends that socket only.
    this.#server.on("tlsClientError", () => {});
    this.#server.on("error", () => {});
    this.#server.on("close", () => this.#stopped.resolve());
    return this.#stopped.promise;
  }

  protected connect(destination: SipAddress): Promise<StreamSocket> {
    const { ca, cert, key } = this.#options;
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: destination.hostname,
        port: destination.port,
        ...(ca === undefined ? {} : { ca }),
        cert,
        key,
        minVersion: MIN_VERSION,
        timeout: this.limits.connectTimeoutMs,
      });
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      socket.once("error", fail);
      socket.once("timeout", () => fail(new Deno.errors.TimedOut("TLS connect timed out")));
      socket.once("secureConnect", () => {
        socket.off("error", fail);
        socket.setTimeout(0);
        resolve(new NodeTlsSocket(socket));
      });
    });
  }

  protected closeListener(): void {
    this.#server.close();
  }
}
