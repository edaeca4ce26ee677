/**
 * The SIP over TCP and TLS settings (CONTRACTS.md 7.3 and the connection limits), out of
 * `config.ts` for its length; `parseConfig` calls `streamConfig`.
 */
import { type ConfigEnv, ConfigError, integer } from "./config.ts";

export interface SipStreamConfig {
  readonly maxConnections: number;
  readonly maxConnectionsPerSource: number;
  readonly idleTimeoutS: number;
  /** SIP over TLS, when the certificate and key are set. */
  readonly tls: {
    readonly port: number;
    readonly certPath: string;
    readonly keyPath: string;
    readonly caPath: string | undefined;
  } | undefined;
}

/** SIP over TCP and TLS (section 7.3): TLS needs the certificate and key together. */
export function streamConfig(env: ConfigEnv): SipStreamConfig {
  const cert = env.SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH || undefined;
  const key = env.SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH || undefined;
  const ca = env.SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH || undefined;
  if ((cert === undefined) !== (key === undefined)) {
    const missing = cert === undefined
      ? "SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH"
      : "SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH";
    throw new ConfigError(missing, "SIP over TLS needs the certificate and key paths together");
  }
  if (ca !== undefined && cert === undefined) {
    throw new ConfigError(
      "SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH",
      "set with the SIP TLS certificate and key",
    );
  }
  const port = integer("SIP_SIGNALING_SERVICE_TLS_PORT", env.SIP_SIGNALING_SERVICE_TLS_PORT, 5061, 0, 65535);
  return {
    maxConnections: integer(
      "SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS",
      env.SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS,
      10_000,
      1,
      1_000_000,
    ),
    maxConnectionsPerSource: integer(
      "SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE",
      env.SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE,
      256,
      1,
      1_000_000,
    ),
    idleTimeoutS: integer(
      "SIP_SIGNALING_SERVICE_TCP_IDLE_TIMEOUT_S",
      env.SIP_SIGNALING_SERVICE_TCP_IDLE_TIMEOUT_S,
      300,
      1,
      86_400,
    ),
    tls: cert === undefined || key === undefined
      ? undefined
      : { port, certPath: cert, keyPath: key, caPath: ca },
  };
}
