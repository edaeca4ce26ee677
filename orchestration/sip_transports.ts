/**
 * The service's SIP sockets (CONTRACTS.md 7.3): UDP and TCP on one address and port
 * (RFC 3261 section 18.1.1 lets a request move to TCP at the same port), and TLS on its
 * own port when a certificate and key are configured. The source allowlist and the
 * connection limits apply at accept.
 */
import { type SipTransport, TcpTransport, TlsTransport, UdpTransport } from "../sip/mod.ts";
import type { ServiceConfig } from "./config.ts";
import { hostPort, ListenError, listening, listeningAsync } from "./listen.ts";

export interface SipTransports {
  readonly udp: UdpTransport;
  readonly tcp: TcpTransport;
  readonly tls: TlsTransport | undefined;
  /** UDP first. */
  readonly all: SipTransport[];
}

/** Tries for a port free for both UDP and TCP when the configured port is 0. */
const SHARED_PORT_ATTEMPTS = 20;

export async function openSipTransports(sip: ServiceConfig["sip"]): Promise<SipTransports> {
  const address = hostPort(sip.listenAddress, sip.port);
  const { streams } = sip;
  const allows = (hostname: string) => sip.allowedSources.allows(hostname);
  const limits = {
    maxConnections: streams.maxConnections,
    maxConnectionsPerSource: streams.maxConnectionsPerSource,
    idleTimeoutMs: streams.idleTimeoutS * 1000,
  };
  let udp: UdpTransport | undefined;
  let tcp: TcpTransport | undefined;
  for (let attempt = 0; tcp === undefined; attempt++) {
    udp = listening(
      "SIP_SIGNALING_SERVICE_SIP_PORT",
      address,
      () => UdpTransport.listen({ hostname: sip.listenAddress, port: sip.port }),
    );
    try {
      tcp = TcpTransport.listen({ hostname: sip.listenAddress, port: udp.local.port, limits, allows });
    } catch (error) {
      await udp.close();
      // Port 0: the port UDP got may be taken for TCP; another try picks another.
      if (sip.port !== 0 || attempt >= SHARED_PORT_ATTEMPTS) {
        throw new ListenError("SIP_SIGNALING_SERVICE_SIP_PORT", `${address} (tcp)`, error);
      }
    }
  }
  let tls: TlsTransport | undefined;
  if (streams.tls !== undefined) {
    const files = streams.tls;
    const read = (setting: string, path: string) =>
      listening(setting, `${path} (read)`, () => Deno.readTextFileSync(path));
    const cert = read("SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH", files.certPath);
    const key = read("SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH", files.keyPath);
    const ca = files.caPath === undefined
      ? undefined
      : read("SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH", files.caPath);
    try {
      tls = await listeningAsync(
        "SIP_SIGNALING_SERVICE_TLS_PORT",
        hostPort(sip.listenAddress, files.port),
        () =>
          TlsTransport.listen({
            hostname: sip.listenAddress,
            port: files.port,
            cert,
            key,
            ...(ca === undefined ? {} : { ca }),
            limits,
            allows,
          }),
      );
    } catch (error) {
      await udp!.close();
      await tcp.close();
      throw error;
    }
  }
  return { udp: udp!, tcp, tls, all: tls === undefined ? [udp!, tcp] : [udp!, tcp, tls] };
}
