// Test helpers: an in-memory transport and message builders.
import {
  type Datagram,
  parseFrame,
  parseMessage,
  type SipAddress,
  SipEndpoint,
  type SipFrame,
  type SipMessage,
  type SipResponse,
  type SipTransport,
  type TransportName,
  UasCore,
} from "../sip/mod.ts";
import { DialogManager } from "../sip/mod.ts";
import {
  type CallBackends,
  CallOrchestrator,
  type CallRecord,
  type OrchestratorOptions,
} from "../orchestration/call_setup.ts";
import type { EventPublisher } from "../orchestration/events.ts";

/** A transport that records what is sent and can be told to fail. */
export class MemoryTransport implements SipTransport {
  readonly protocol: TransportName;
  readonly reliable: boolean;
  readonly local: SipAddress = { hostname: "127.0.0.1", port: 5060 };

  constructor(protocol: TransportName = "UDP") {
    this.protocol = protocol;
    this.reliable = protocol !== "UDP";
  }
  /** Parseable messages sent, in order. */
  readonly sent: { message: SipMessage; destination: SipAddress }[] = [];
  /** Every datagram sent, parseable or not (a 400 copies the broken header it names). */
  readonly raw: { frame: SipFrame; destination: SipAddress }[] = [];
  failSends = false;

  send(bytes: Uint8Array, destination: SipAddress): Promise<void> {
    if (this.failSends) return Promise.reject(new Error("network unreachable"));
    this.raw.push({ frame: parseFrame(bytes), destination });
    try {
      this.sent.push({ message: parseMessage(bytes), destination });
    } catch {
      // Kept in `raw` only.
    }
    return Promise.resolve();
  }
  serve(_deliver: (message: Datagram) => void): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Status codes sent so far (responses only). */
  statuses(): number[] {
    return this.sent.flatMap((s) => (s.message.kind === "response" ? [s.message.status] : []));
  }
  lastResponse(): SipResponse {
    const last = this.sent.findLast((s) => s.message.kind === "response");
    if (last === undefined || last.message.kind !== "response") throw new Error("no response sent");
    return last.message;
  }
  clear(): void {
    this.sent.length = 0;
    this.raw.length = 0;
  }
}

export interface RequestSpec {
  method?: string;
  branch?: string;
  callId?: string;
  cseq?: number;
  cseqMethod?: string;
  toTag?: string | undefined;
  fromTag?: string;
  via?: string;
  extra?: string[];
  body?: string;
  uri?: string;
}

/** Wire bytes of a request with sensible defaults. */
export function requestBytes(spec: RequestSpec = {}): Uint8Array {
  const method = spec.method ?? "INVITE";
  const body = spec.body ?? "";
  const lines = [
    `${method} ${spec.uri ?? "sip:905551112233@127.0.0.1:5060"} SIP/2.0`,
    `Via: ${spec.via ?? `SIP/2.0/UDP 192.0.2.10:5070;branch=${spec.branch ?? "z9hG4bK-1"};rport`}`,
    "Max-Forwards: 70",
    `From: "Caller" <sip:905321234567@192.0.2.10>${
      spec.fromTag === "" ? "" : `;tag=${spec.fromTag ?? "caller-tag"}`
    }`,
    `To: <sip:905551112233@127.0.0.1>${spec.toTag === undefined ? "" : `;tag=${spec.toTag}`}`,
    `Call-ID: ${spec.callId ?? "call-1@192.0.2.10"}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.cseqMethod ?? method}`,
    "Contact: <sip:905321234567@192.0.2.10:5070>",
    ...(spec.extra ?? []),
    `Content-Length: ${new TextEncoder().encode(body).length}`,
    "",
    body,
  ];
  return new TextEncoder().encode(lines.join("\r\n"));
}

export const CALLER: SipAddress = { hostname: "192.0.2.10", port: 5070 };

export interface CallPath {
  readonly wire: MemoryTransport;
  readonly endpoint: SipEndpoint;
  readonly dialogs: DialogManager;
  readonly orchestrator: CallOrchestrator;
  /** The final response to `method`, of the call `callId` if given. */
  finalFor(method: string, callId?: string): SipResponse | undefined;
  /** Delivers a request from the caller. */
  feed(spec: RequestSpec): void;
}

/**
 * The call path below the sockets, as the service wires it: an in-memory transport,
 * the endpoint, dialogs, the orchestrator over `backends`, and the UAS core.
 */
export function wireCallPath(
  backends: CallBackends,
  events: EventPublisher,
  options: Omit<OrchestratorOptions, "publicIp" | "defaultCountryCode">,
): CallPath {
  const allow = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"];
  const wire = new MemoryTransport();
  const endpoint = new SipEndpoint(wire, { timers: { t1: 500, t2: 4000, t4: 5000 } });
  const dialogs = new DialogManager<CallRecord>(endpoint, {
    contactHost: "203.0.113.5",
    contactPort: 5060,
    sessionExpires: 1800,
    minSE: 90,
    allow,
    serverName: "test",
  });
  const orchestrator = new CallOrchestrator(backends, events, dialogs, {
    publicIp: "203.0.113.5",
    defaultCountryCode: "90",
    ...options,
  });
  dialogs.setController(orchestrator);
  endpoint.transactions.setUser(
    new UasCore(endpoint.transactions, dialogs, {
      allow,
      supported: ["timer"],
      accept: [],
      serverName: "test",
    }),
  );
  const finalFor = (method: string, callId?: string) =>
    wire.sent.map((s) => s.message).find((m): m is SipResponse =>
      m.kind === "response" && m.status >= 200 && m.cseq.method === method &&
      (callId === undefined || m.callId === callId)
    );
  return {
    wire,
    endpoint,
    dialogs,
    orchestrator,
    finalFor,
    feed: (spec: RequestSpec) => endpoint.receive(requestBytes(spec), CALLER),
  };
}
