// Test helpers: an in-memory transport and message builders.
import {
  type Datagram,
  parseFrame,
  parseMessage,
  type SipAddress,
  type SipFrame,
  type SipMessage,
  type SipResponse,
  type SipTransport,
} from "../sip/mod.ts";

/** A transport that records what is sent and can be told to fail. */
export class MemoryTransport implements SipTransport {
  readonly protocol = "UDP";
  readonly local: SipAddress = { hostname: "127.0.0.1", port: 5060 };
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
  async *receive(): AsyncIterable<Datagram> {}
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
