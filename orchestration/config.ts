/**
 * Service configuration (CONTRACTS.md sections 5 and 7.3). `parseConfig` is pure:
 * `main.ts` reads the variables named in `CONFIG_ENV_NAMES` and the command line
 * (`parseFlags`: one flag per setting, named after its variable) and passes them in.
 * A flag wins over the environment; of two spellings of a variable the later name
 * wins. Every value is validated once; a bad one is a `ConfigError` naming the
 * variable (or flag).
 */
import { DEFAULT_ALLOWED_SOURCES, SourceAllowlist } from "../sip/mod.ts";
import { type SipStreamConfig, streamConfig } from "./config_streams.ts";

export type { SipStreamConfig } from "./config_streams.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

export interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
}

export interface ServiceConfig {
  readonly development: boolean;
  /** In-process reference dialplan/user/media servers and an event sink. */
  readonly embedded: boolean;
  readonly sip: {
    readonly listenAddress: string;
    readonly port: number;
    /** Address written in SDP c=/o= and in our Contact. */
    readonly publicIp: string;
    readonly t1: number;
    readonly t2: number;
    readonly t4: number;
    /** Session interval we ask for when the caller names none (RFC 4028). */
    readonly sessionExpires: number;
    /** Smallest session interval we accept (Min-SE); smaller gets 422. */
    readonly minSE: number;
    /** Sources that may send SIP; the rest are dropped unanswered. */
    readonly allowedSources: SourceAllowlist;
    /** Server / User-Agent value; empty: no such header. */
    readonly serverHeader: string;
    /** SIP over TCP (on the UDP port) and TLS. */
    readonly streams: SipStreamConfig;
  };
  readonly grpc: {
    readonly dialplanUrl: string | undefined;
    readonly mediaUrl: string | undefined;
    readonly userUrl: string | undefined;
    readonly port: number;
    readonly listenAddress: string;
    readonly tls: TlsFiles | undefined;
  };
  readonly httpPort: number;
  readonly httpListenAddress: string;
  /** The caller's longest wait from INVITE to a final answer, shared by every backend call of the setup. */
  readonly setupTimeoutMs: number;
  /** Calls up (and in setup) at once; more get 503 with Retry-After. */
  readonly maxCalls: number;
  /** A call up this long after its 200 OK gets our BYE (reason max_duration); 0 = never. */
  readonly maxCallDurationS: number;
  /** On SIGTERM, how long calls that are up may run on before they get our BYE (drain_timeout). */
  readonly drainTimeoutS: number;
  readonly logLevel: LogLevel;
  /** Variables that were set but are no longer read, for a warning at start. */
  readonly retired: readonly (typeof CONFIG_ENV_NAMES)[number][];
  /** The broker, or the nodes of its cluster in order; undefined: events to stdout. */
  readonly rabbitmqUrl: readonly string[] | undefined;
  /** Country code put before national numbers (E.164 without "+"). */
  readonly defaultCountryCode: string;
  /** New calls beyond this many still being set up get 503 at once (overload). */
  readonly maxCallsInSetup: number;
  /**
   * New calls get 503 while more events than this wait for the bus (a broker outage):
   * the agent could not hear of them, and the outbox must not grow without bound.
   */
  readonly maxEventsPending: number;
  /** INVITE header names (`*` suffix wildcard) copied into `call.started` as `sipHeaders`. */
  readonly forwardHeaders: string;
}

export type LogLevel = "debug" | "info" | "warning" | "error";

/** Every variable the service reads; `main.ts` reads exactly these. */
export const CONFIG_ENV_NAMES = [
  "ENV",
  "SIP_SIGNALING_SERVICE_LISTEN_ADDRESS",
  "SIP_SIGNALING_SERVICE_PORT",
  "SIP_SIGNALING_SERVICE_SIP_PORT",
  "PUBLIC_IP",
  "SIP_SIGNALING_SERVICE_PUBLIC_IP",
  "DIALPLAN_SERVICE_GRPC_URL",
  "DIALPLAN_SERVICE_TARGET_GRPC_URL",
  "MEDIA_SERVICE_GRPC_URL",
  "MEDIA_SERVICE_TARGET_GRPC_URL",
  "USER_SERVICE_GRPC_URL",
  "USER_SERVICE_TARGET_GRPC_URL",
  "SIP_SIGNALING_SERVICE_GRPC_PORT",
  "SIP_SIGNALING_SERVICE_HTTP_PORT",
  "RABBITMQ_URL",
  "SIP_SIGNALING_SERVICE_CERT_PATH",
  "SIP_SIGNALING_SERVICE_KEY_PATH",
  "GRPC_TLS_CA_PATH",
  "SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE",
  "SIP_SIGNALING_SERVICE_GRPC_DEADLINE_MS",
  "SIP_SIGNALING_SERVICE_T1_MS",
  "SIP_SIGNALING_SERVICE_T2_MS",
  "SIP_SIGNALING_SERVICE_T4_MS",
  "SIP_SIGNALING_SERVICE_SESSION_EXPIRES",
  "SIP_SIGNALING_SERVICE_MIN_SE",
  "SIP_SIGNALING_SERVICE_MAX_CALLS_IN_SETUP",
  "SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING",
  "SIP_SIGNALING_SERVICE_ALLOWED_SOURCES",
  "SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS",
  "SIP_SIGNALING_SERVICE_MAX_CALLS",
  "SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S",
  "SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S",
  "SIP_SIGNALING_SERVICE_SERVER_HEADER",
  "SIP_SIGNALING_SERVICE_HTTP_LISTEN_ADDRESS",
  "SIP_SIGNALING_SERVICE_GRPC_LISTEN_ADDRESS",
  "SIP_SIGNALING_SERVICE_TLS_PORT",
  "SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH",
  "SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH",
  "SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH",
  "SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS",
  "SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE",
  "SIP_SIGNALING_SERVICE_TCP_IDLE_TIMEOUT_S",
  "SIP_SIGNALING_SERVICE_FORWARD_HEADERS",
  "LOG_LEVEL",
] as const;

/**
 * Variables of earlier releases that no longer mean anything. Setting one is not an
 * error (a deployment may still carry it) but is warned about at start.
 */
export const RETIRED_ENV_NAMES: Readonly<Partial<Record<(typeof CONFIG_ENV_NAMES)[number], string>>> = {
  SIP_SIGNALING_SERVICE_GRPC_DEADLINE_MS: "replaced by SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS, " +
    "one budget that ResolveDialplan and AllocatePort share",
};

export type ConfigEnv = Partial<Record<(typeof CONFIG_ENV_NAMES)[number], string>>;

/** The service's variables from an environment lookup (`(name) => Deno.env.get(name)`). */
export function configEnv(lookup: (name: string) => string | undefined): ConfigEnv {
  const env: ConfigEnv = {};
  for (const name of CONFIG_ENV_NAMES) {
    const value = lookup(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

export type Name = (typeof CONFIG_ENV_NAMES)[number];

/** Later name wins; returns the name that supplied the value, for error messages. */
function pick(env: ConfigEnv, earlier: Name, later: Name): { name: Name; value: string | undefined } {
  const l = env[later];
  if (l !== undefined && l !== "") return { name: later, value: l };
  const e = env[earlier];
  return { name: earlier, value: e === "" ? undefined : e };
}

export function integer(
  name: Name,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined || value === "") return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, `expected a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:.]+$/;

function ipAddress(name: Name, value: string): string {
  if (IPV4.test(value) || (value.includes(":") && IPV6.test(value))) return value;
  throw new ConfigError(name, `expected an IPv4 or IPv6 address, got "${value}"`);
}

function grpcTarget(name: Name, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bare = value.replace(/^(dns:\/\/\/|https?:\/\/)/, "");
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(bare)) {
    throw new ConfigError(name, `expected host:port, got "${value}"`);
  }
  return bare;
}

/** Options that come from the command line, not the environment. */
export interface ConfigFlags {
  readonly embedded?: boolean;
}

export function parseConfig(env: ConfigEnv, flags: ConfigFlags = {}): ServiceConfig {
  const development = (env.ENV ?? "production") === "development";
  const embedded = flags.embedded ?? false;
  const listenAddress = ipAddress(
    "SIP_SIGNALING_SERVICE_LISTEN_ADDRESS",
    env.SIP_SIGNALING_SERVICE_LISTEN_ADDRESS || "0.0.0.0",
  );
  const port = pick(env, "SIP_SIGNALING_SERVICE_PORT", "SIP_SIGNALING_SERVICE_SIP_PORT");
  const publicIp = pick(env, "PUBLIC_IP", "SIP_SIGNALING_SERVICE_PUBLIC_IP");
  let publicAddress: string;
  if (publicIp.value !== undefined) publicAddress = ipAddress(publicIp.name, publicIp.value);
  else if (development || embedded) {
    publicAddress = listenAddress === "0.0.0.0"
      ? "127.0.0.1"
      : listenAddress === "::"
      ? "::1"
      : listenAddress;
  } else {throw new ConfigError(
      "SIP_SIGNALING_SERVICE_PUBLIC_IP",
      "required outside development (or PUBLIC_IP)",
    );}

  const dialplan = pick(env, "DIALPLAN_SERVICE_GRPC_URL", "DIALPLAN_SERVICE_TARGET_GRPC_URL");
  const media = pick(env, "MEDIA_SERVICE_GRPC_URL", "MEDIA_SERVICE_TARGET_GRPC_URL");
  const user = pick(env, "USER_SERVICE_GRPC_URL", "USER_SERVICE_TARGET_GRPC_URL");
  const dialplanUrl = grpcTarget(dialplan.name, dialplan.value);
  const mediaUrl = grpcTarget(media.name, media.value);
  const userUrl = grpcTarget(user.name, user.value);
  if (!embedded) {
    if (dialplanUrl === undefined) {
      throw new ConfigError("DIALPLAN_SERVICE_TARGET_GRPC_URL", "required (or --embedded)");
    }
    if (mediaUrl === undefined) {
      throw new ConfigError("MEDIA_SERVICE_TARGET_GRPC_URL", "required (or --embedded)");
    }
  }
  const tlsNames = [
    "SIP_SIGNALING_SERVICE_CERT_PATH",
    "SIP_SIGNALING_SERVICE_KEY_PATH",
    "GRPC_TLS_CA_PATH",
  ] as const;
  const tlsSet = tlsNames.filter((n) => env[n] !== undefined && env[n] !== "");
  if (tlsSet.length > 0 && tlsSet.length < 3) {
    const missing = tlsNames.find((n) => !tlsSet.includes(n)) as Name;
    throw new ConfigError(missing, "mTLS needs the certificate, key and CA paths together");
  }
  const tls = tlsSet.length === 3
    ? {
      certPath: env.SIP_SIGNALING_SERVICE_CERT_PATH as string,
      keyPath: env.SIP_SIGNALING_SERVICE_KEY_PATH as string,
      caPath: env.GRPC_TLS_CA_PATH as string,
    }
    : undefined;

  // Several URLs, comma-separated: the nodes of a cluster, tried in order.
  const rabbitmqUrls = (env.RABBITMQ_URL ?? "").split(",").map((u) => u.trim()).filter((u) => u !== "");
  for (const url of rabbitmqUrls) {
    if (!/^amqps?:\/\/[^\s,]+$/.test(url)) {
      throw new ConfigError("RABBITMQ_URL", `expected amqp:// or amqps:// URLs, got "${redactUrl(url)}"`);
    }
  }
  const rabbitmqUrl = rabbitmqUrls.length === 0 ? undefined : rabbitmqUrls;
  const countryCode = env.SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE || "90";
  if (!/^[1-9]\d{0,2}$/.test(countryCode)) {
    throw new ConfigError(
      "SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE",
      `expected 1-3 digits, got "${countryCode}"`,
    );
  }
  const t1 = integer("SIP_SIGNALING_SERVICE_T1_MS", env.SIP_SIGNALING_SERVICE_T1_MS, 500, 1, 60_000);
  const t2 = integer("SIP_SIGNALING_SERVICE_T2_MS", env.SIP_SIGNALING_SERVICE_T2_MS, 4000, t1, 600_000);
  const t4 = integer("SIP_SIGNALING_SERVICE_T4_MS", env.SIP_SIGNALING_SERVICE_T4_MS, 5000, 1, 600_000);
  const minSE = integer("SIP_SIGNALING_SERVICE_MIN_SE", env.SIP_SIGNALING_SERVICE_MIN_SE, 90, 90, 86_400);
  const sessionExpires = integer(
    "SIP_SIGNALING_SERVICE_SESSION_EXPIRES",
    env.SIP_SIGNALING_SERVICE_SESSION_EXPIRES,
    1800,
    minSE,
    86_400,
  );
  let allowedSources: SourceAllowlist;
  try {
    allowedSources = SourceAllowlist.parse(
      env.SIP_SIGNALING_SERVICE_ALLOWED_SOURCES || DEFAULT_ALLOWED_SOURCES.join(","),
    );
  } catch (error) {
    throw new ConfigError("SIP_SIGNALING_SERVICE_ALLOWED_SOURCES", (error as Error).message);
  }
  const serverHeader = env.SIP_SIGNALING_SERVICE_SERVER_HEADER ?? "sentiric-sip-signaling";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(serverHeader)) {
    throw new ConfigError("SIP_SIGNALING_SERVICE_SERVER_HEADER", "must not hold control characters");
  }
  const logLevel = (env.LOG_LEVEL || "info").toLowerCase();
  if (!["debug", "info", "warning", "error"].includes(logLevel)) {
    throw new ConfigError("LOG_LEVEL", `expected debug, info, warning or error, got "${env.LOG_LEVEL}"`);
  }
  const address = (name: Name): string => {
    const value = env[name];
    return value === undefined || value === "" ? listenAddress : ipAddress(name, value);
  };
  return {
    development,
    embedded,
    sip: {
      listenAddress,
      port: integer(port.name, port.value, 5060, 0, 65535),
      publicIp: publicAddress,
      t1,
      t2,
      t4,
      sessionExpires,
      minSE,
      allowedSources,
      serverHeader,
      streams: streamConfig(env),
    },
    grpc: {
      dialplanUrl,
      mediaUrl,
      userUrl,
      port: integer("SIP_SIGNALING_SERVICE_GRPC_PORT", env.SIP_SIGNALING_SERVICE_GRPC_PORT, 13021, 0, 65535),
      listenAddress: address("SIP_SIGNALING_SERVICE_GRPC_LISTEN_ADDRESS"),
      tls,
    },
    httpPort: integer(
      "SIP_SIGNALING_SERVICE_HTTP_PORT",
      env.SIP_SIGNALING_SERVICE_HTTP_PORT,
      13020,
      0,
      65535,
    ),
    httpListenAddress: address("SIP_SIGNALING_SERVICE_HTTP_LISTEN_ADDRESS"),
    setupTimeoutMs: integer(
      "SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS",
      env.SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS,
      2000,
      100,
      120_000,
    ),
    maxCalls: integer(
      "SIP_SIGNALING_SERVICE_MAX_CALLS",
      env.SIP_SIGNALING_SERVICE_MAX_CALLS,
      100_000,
      1,
      10_000_000,
    ),
    maxCallDurationS: integer(
      "SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S",
      env.SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S,
      14_400,
      0,
      30 * 86_400,
    ),
    drainTimeoutS: integer(
      "SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S",
      env.SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S,
      3600,
      0,
      30 * 86_400,
    ),
    logLevel: logLevel as LogLevel,
    retired: (Object.keys(RETIRED_ENV_NAMES) as Name[]).filter((n) => (env[n] ?? "") !== ""),
    rabbitmqUrl,
    defaultCountryCode: countryCode,
    forwardHeaders: forwardHeaders(env.SIP_SIGNALING_SERVICE_FORWARD_HEADERS),
    maxCallsInSetup: integer(
      "SIP_SIGNALING_SERVICE_MAX_CALLS_IN_SETUP",
      env.SIP_SIGNALING_SERVICE_MAX_CALLS_IN_SETUP,
      500,
      1,
      1_000_000,
    ),
    maxEventsPending: integer(
      "SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING",
      env.SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING,
      10_000,
      1,
      10_000_000,
    ),
  };
}

/** Comma-separated header names, each a token with an optional `*` at its end (7.2); default `X-*`. */
function forwardHeaders(value: string | undefined): string {
  const spec = value ?? "X-*";
  for (const name of spec.split(",").map((n) => n.trim()).filter((n) => n !== "")) {
    if (!/^[A-Za-z0-9!%'`~.+_-]+\*?$/.test(name)) {
      throw new ConfigError(
        "SIP_SIGNALING_SERVICE_FORWARD_HEADERS",
        `"${name}" is not a header name (or prefix*)`,
      );
    }
  }
  return spec;
}

/** A URL with any password replaced, safe to log. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*):[^@/\s]*@/i, "$1:***@");
}

/** The configuration as logged once at start: plain values, the broker password redacted. */
export function effectiveConfig(config: ServiceConfig): Record<string, unknown> {
  return {
    ...config,
    sip: { ...config.sip, allowedSources: config.sip.allowedSources.toString() },
    rabbitmqUrl: config.rabbitmqUrl?.map(redactUrl),
  };
}
