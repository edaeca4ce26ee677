/**
 * The command line: one flag per setting, named after its variable
 * (`SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS` -> `--setup-timeout-ms`), `--embedded`,
 * `--help` (every setting with its default and meaning) and `--version`. A flag wins
 * over the environment; an unknown flag is a `ConfigError`.
 */
import { parseArgs } from "node:util";
import { DEFAULT_ALLOWED_SOURCES } from "../sip/mod.ts";
import {
  CONFIG_ENV_NAMES,
  type ConfigEnv,
  ConfigError,
  type ConfigFlags,
  type Name,
  RETIRED_ENV_NAMES,
} from "./config.ts";

/** The variables that have a flag: the later spelling of each setting, retired ones left out. */
const EARLIER_NAMES: ReadonlySet<string> = new Set([
  "SIP_SIGNALING_SERVICE_PORT",
  "PUBLIC_IP",
  "DIALPLAN_SERVICE_GRPC_URL",
  "MEDIA_SERVICE_GRPC_URL",
  "USER_SERVICE_GRPC_URL",
]);
export const FLAG_ENV_NAMES: readonly Name[] = CONFIG_ENV_NAMES.filter((n) =>
  !EARLIER_NAMES.has(n) && RETIRED_ENV_NAMES[n] === undefined
);

/** The flag of a variable: `SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS` -> `setup-timeout-ms`. */
export function flagName(variable: string): string {
  return variable.replace(/^SIP_SIGNALING_SERVICE_/, "").toLowerCase().replaceAll("_", "-");
}

/** What the command line says: settings (as variables, to lay over the environment) and switches. */
export interface CommandLine {
  readonly env: ConfigEnv;
  readonly flags: ConfigFlags;
  readonly help: boolean;
  readonly version: boolean;
}

/** Parses `--name=value` / `--name value` for every setting, plus the switches; unknown flags are errors. */
export function parseFlags(args: readonly string[]): CommandLine {
  const options: Record<string, { type: "string" | "boolean" }> = {
    embedded: { type: "boolean" },
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const name of FLAG_ENV_NAMES) options[flagName(name)] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] as string : String(error);
    throw new ConfigError("command line", `${message} (see --help)`);
  }
  const env: ConfigEnv = {};
  for (const name of FLAG_ENV_NAMES) {
    const value = values[flagName(name)];
    if (typeof value === "string") env[name] = value;
  }
  return {
    env,
    flags: { embedded: values.embedded === true },
    help: values.help === true,
    version: values.version === true,
  };
}

/** `--help`: every setting with its flag, default and meaning (CONTRACTS.md sections 5 and 7.3). */
const SETTING_HELP: Readonly<Partial<Record<Name, readonly [string, string]>>> = {
  ENV: ["production", '"development" gives text logs, anything else JSON lines'],
  LOG_LEVEL: ["info", "debug, info, warning or error"],
  SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: ["0.0.0.0", "SIP listen address (IPv4 or IPv6)"],
  SIP_SIGNALING_SERVICE_SIP_PORT: ["5060", "SIP port (earlier name SIP_SIGNALING_SERVICE_PORT)"],
  SIP_SIGNALING_SERVICE_PUBLIC_IP: [
    "required outside dev",
    "address in SDP and our Contact (earlier PUBLIC_IP)",
  ],
  SIP_SIGNALING_SERVICE_ALLOWED_SOURCES: [
    DEFAULT_ALLOWED_SOURCES.join(","),
    "CIDRs that may send SIP; anything else is dropped unanswered",
  ],
  SIP_SIGNALING_SERVICE_SERVER_HEADER: ["sentiric-sip-signaling", "Server / User-Agent value (empty: none)"],
  DIALPLAN_SERVICE_TARGET_GRPC_URL: [
    "required",
    "DialplanService host:port (earlier DIALPLAN_SERVICE_GRPC_URL)",
  ],
  MEDIA_SERVICE_TARGET_GRPC_URL: ["required", "MediaService host:port (earlier MEDIA_SERVICE_GRPC_URL)"],
  USER_SERVICE_TARGET_GRPC_URL: ["", "UserService host:port (earlier USER_SERVICE_GRPC_URL)"],
  SIP_SIGNALING_SERVICE_GRPC_PORT: ["13021", "port of our SipSignalingService (TerminateCall)"],
  SIP_SIGNALING_SERVICE_GRPC_LISTEN_ADDRESS: ["the SIP listen address", "where our gRPC server listens"],
  SIP_SIGNALING_SERVICE_HTTP_PORT: ["13020", "health and metrics over HTTP"],
  SIP_SIGNALING_SERVICE_HTTP_LISTEN_ADDRESS: ["the SIP listen address", "where health and metrics listen"],
  RABBITMQ_URL: [
    "unset: events to stdout",
    "amqp:// or amqps:// URL; a cluster's nodes comma-separated, tried in order (never logged with a password)",
  ],
  SIP_SIGNALING_SERVICE_CERT_PATH: ["unset: plaintext", "mTLS certificate (with the key and CA)"],
  SIP_SIGNALING_SERVICE_KEY_PATH: ["unset: plaintext", "mTLS private key"],
  GRPC_TLS_CA_PATH: ["unset: plaintext", "mTLS CA bundle"],
  SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE: ["90", "prefix for national numbers (E.164 without +)"],
  SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: [
    "2000",
    "longest wait from INVITE to final answer; backend calls share it",
  ],
  SIP_SIGNALING_SERVICE_MAX_CALLS: ["100000", "calls up at once; more get 503 + Retry-After"],
  SIP_SIGNALING_SERVICE_MAX_CALLS_IN_SETUP: ["500", "calls in setup at once; more get 503 + Retry-After"],
  SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S: [
    "14400",
    "calls up this long get our BYE (max_duration); 0 = never",
  ],
  SIP_SIGNALING_SERVICE_DRAIN_TIMEOUT_S: ["3600", "on SIGTERM, how long calls up may run on before our BYE"],
  SIP_SIGNALING_SERVICE_MAX_EVENTS_PENDING: [
    "10000",
    "events waiting for the broker; beyond it new calls get 503",
  ],
  SIP_SIGNALING_SERVICE_TLS_PORT: ["5061", "SIP over TLS port (when the certificate and key are set)"],
  SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH: ["unset: no TLS", "SIP over TLS certificate chain (PEM)"],
  SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH: ["unset: no TLS", "SIP over TLS private key (PEM)"],
  SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH: [
    "unset: no client certificate asked",
    "CA bundle: TLS clients must present a certificate it signed (mutual TLS)",
  ],
  SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS: ["10000", "SIP TCP and TLS connections open at once"],
  SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE: ["256", "accepted SIP connections from one address"],
  SIP_SIGNALING_SERVICE_TCP_IDLE_TIMEOUT_S: ["300", "a SIP connection quiet this long is closed"],
  SIP_SIGNALING_SERVICE_FORWARD_HEADERS: [
    "X-*",
    "INVITE headers copied into call.started as sipHeaders (comma-separated, * as a suffix wildcard)",
  ],
  SIP_SIGNALING_SERVICE_T1_MS: ["500", "RFC 3261 timer T1"],
  SIP_SIGNALING_SERVICE_T2_MS: ["4000", "RFC 3261 timer T2"],
  SIP_SIGNALING_SERVICE_T4_MS: ["5000", "RFC 3261 timer T4"],
  SIP_SIGNALING_SERVICE_SESSION_EXPIRES: ["1800", "session interval when the caller names none (RFC 4028)"],
  SIP_SIGNALING_SERVICE_MIN_SE: ["90", "smallest session interval accepted (422 below)"],
};

/** The text `--help` prints. */
export function helpText(version: string): string {
  const rows = FLAG_ENV_NAMES.map((name) => {
    const [fallback, meaning] = SETTING_HELP[name] ?? ["", ""];
    return `  --${flagName(name)}=VALUE\n      ${name}; ${meaning}${
      fallback === "" ? "" : ` (default: ${fallback})`
    }`;
  });
  return [
    `sip-signaling ${version}: the SIP signaling service of the Sentiric voice-AI platform`,
    "",
    "usage: sip-signaling [--embedded] [--FLAG=VALUE ...]",
    "",
    "  --embedded      in-process reference backends on loopback and a stdout event sink",
    "  --help          this text",
    "  --version       the version",
    "",
    "Settings (a flag wins over its environment variable):",
    ...rows,
    "",
  ].join("\n");
}
