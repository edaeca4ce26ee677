// Memory held by the SIP layers (endpoint, transactions, dialogs) per call, measured
// in-process after a forced GC:
// - per completed call: INVITE, 200, ACK, BYE, 200 done; its transactions are still
//   held for their 64*T1 wait (Timers J and L), as in production for 32 s;
// - per established dialog: INVITE, 200, ACK; the call stays up.
// Baseline in the same run: the bytes those messages took on the wire.
//   deno run --v8-flags=--expose-gc -P=bench bench/memory.ts [calls]
// deno-lint-ignore-file no-console
import {
  type Datagram,
  parseMessage,
  type SipAddress,
  SipEndpoint,
  type SipTransport,
  UasCore,
} from "../sip/mod.ts";
import { type CallController, DialogManager } from "../sip/dialog.ts";
import { SDP } from "./codec.ts";

const CALLS = Number(Deno.args[0] ?? "20000");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

/** Keeps nothing of what it sends, like a socket. */
class NullTransport implements SipTransport {
  readonly protocol = "UDP";
  readonly reliable = false;
  readonly local: SipAddress = { hostname: "127.0.0.1", port: 5060 };
  lastToTag = "";
  send(bytes: Uint8Array): Promise<void> {
    // The To-tag of our 200, for the ACK and BYE that follow.
    const text = new TextDecoder().decode(bytes.subarray(0, 600));
    const tag = /\r\nTo: [^\r\n]*;tag=([0-9a-f]+)/.exec(text)?.[1];
    if (tag !== undefined && text.startsWith("SIP/2.0 200")) this.lastToTag = tag;
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
}

function request(method: string, n: number, cseq: number, toTag = "", body = ""): Uint8Array {
  return new TextEncoder().encode([
    `${method} sip:905551112233@127.0.0.1:5060 SIP/2.0`,
    `Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-${method}-${n};rport`,
    "Max-Forwards: 70",
    `From: "Caller" <sip:905321234567@192.0.2.10:5070>;tag=caller-${n}`,
    `To: <sip:905551112233@127.0.0.1:5060>${toTag === "" ? "" : `;tag=${toTag}`}`,
    `Call-ID: ${n}-memory@192.0.2.10`,
    `CSeq: ${cseq} ${method}`,
    "Contact: <sip:905321234567@192.0.2.10:5070>",
    "User-Agent: bench",
    "Supported: timer",
    ...(body === "" ? [] : ["Content-Type: application/sdp"]),
    `Content-Length: ${body.length}`,
    "",
    body,
  ].join("\r\n"));
}

function heapUsed(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

/** Bytes held per call after `calls` calls, each ended (BYE) or left up. */
function measure(
  calls: number,
  end: boolean,
): { perCall: number; wireBytes: number; held: unknown; microsPerCall: number; parseMicrosPerCall: number } {
  const wire = new NullTransport();
  const endpoint = new SipEndpoint(wire, { timers: { t1: 500, t2: 4000, t4: 5000 } });
  const answer = new TextEncoder().encode(SDP);
  const controller: CallController = {
    onIncomingCall: (call) => call.accept(answer),
    onAnswered: () => {},
    onEnded: () => {},
    answerReoffer: () => answer,
    onCancelled: () => {},
  };
  const dialogs = new DialogManager(endpoint, {
    contactHost: "127.0.0.1",
    contactPort: 5060,
    sessionExpires: 1800,
    minSE: 90,
    allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"],
    serverName: "bench",
    maxCallDurationMs: 0,
  });
  dialogs.setController(controller);
  endpoint.transactions.setUser(
    new UasCore(endpoint.transactions, dialogs, {
      allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"],
      supported: ["timer"],
      accept: ["application/sdp"],
      serverName: "bench",
    }),
  );
  const caller = { hostname: "192.0.2.10", port: 5070 };
  const before = heapUsed();
  let wireBytes = 0;
  let parseMs = 0;
  const started = performance.now();
  for (let n = 0; n < calls; n++) {
    const invite = request("INVITE", n, 1, "", SDP);
    endpoint.receive(invite, caller);
    const toTag = wire.lastToTag;
    const ack = request("ACK", n, 1, toTag);
    endpoint.receive(ack, caller);
    wireBytes += invite.length + ack.length;
    let bye: Uint8Array | undefined;
    if (end) {
      bye = request("BYE", n, 2, toTag);
      endpoint.receive(bye, caller);
      wireBytes += bye.length;
    }
    // Baseline in the same run: parsing the same messages and nothing more.
    const t = performance.now();
    parseMessage(invite);
    parseMessage(ack);
    if (bye !== undefined) parseMessage(bye);
    parseMs += performance.now() - t;
  }
  const totalMs = performance.now() - started - parseMs;
  const perCall = (heapUsed() - before) / calls;
  const held = { transactions: endpoint.transactions.size, dialogs: dialogs.size };
  endpoint.transactions.close();
  dialogs.closeAll("bench_end");
  return {
    perCall,
    wireBytes: wireBytes / calls,
    held,
    microsPerCall: (1000 * totalMs) / calls,
    parseMicrosPerCall: (1000 * parseMs) / calls,
  };
}

measure(2000, true); // warm-up: JIT, inline caches
const completed = measure(CALLS, true);
const established = measure(CALLS, false);
const kb = (b: number) => (b / 1024).toFixed(1);
console.log(
  `sip layers: ${CALLS} calls through endpoint, transactions and dialogs (in-process, memory after GC)`,
);
console.log(
  `  CPU per completed call (INVITE, ACK, BYE and our answers): ${completed.microsPerCall.toFixed(1)} µs; ` +
    `parsing its three requests alone: ${completed.parseMicrosPerCall.toFixed(1)} µs; ratio ${
      (completed.microsPerCall / completed.parseMicrosPerCall).toFixed(1)
    }`,
);
console.log(
  `  held per completed call (its transactions in their 64*T1 wait): ${kb(completed.perCall)} KB; ` +
    `its messages on the wire: ${kb(completed.wireBytes)} KB; ratio ${
      (completed.perCall / completed.wireBytes).toFixed(1)
    } ${JSON.stringify(completed.held)}`,
);
console.log(
  `  held per established dialog (INVITE, 200, ACK; the call up): ${kb(established.perCall)} KB; ` +
    `its messages on the wire: ${kb(established.wireBytes)} KB; ratio ${
      (established.perCall / established.wireBytes).toFixed(1)
    } ${JSON.stringify(established.held)}`,
);
Deno.exit(0);
