// Codec throughput: a typical INVITE with SDP, parsed and serialized, beside
// JSON.parse / JSON.stringify of a payload of the same size measured in the same run.
import { parseMessage, serializeMessage, type SipMessage } from "../sip/mod.ts";
import { answerOffer } from "../orchestration/sdp.ts";
// @ts-types="@types/sdp-transform"
import * as sdpTransform from "sdp-transform";

/** A caller's SDP offer (PCMU, PCMA, telephone-event), as the benches send it. */
export const SDP = [
  "v=0",
  "o=caller 53655765 2353687637 IN IP4 192.0.2.10",
  "s=-",
  "c=IN IP4 192.0.2.10",
  "t=0 0",
  "m=audio 6000 RTP/AVP 0 8 101",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-16",
  "a=ptime:20",
  "a=sendrecv",
  "",
].join("\r\n");

export const TYPICAL_INVITE = new TextEncoder().encode([
  "INVITE sip:905551112233@203.0.113.5:5060 SIP/2.0",
  "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---8a1e7f2c;rport",
  "Via: SIP/2.0/UDP 192.0.2.10:5070;received=192.0.2.10;branch=z9hG4bK77ef4c2312983.1",
  "Record-Route: <sip:198.51.100.7;lr;ftag=as1c2e4f>",
  "Max-Forwards: 69",
  'From: "Caller" <sip:905321234567@192.0.2.10>;tag=as1c2e4f',
  "To: <sip:905551112233@203.0.113.5>",
  "Call-ID: 3c26700857f1-7f5c@192.0.2.10",
  "CSeq: 102 INVITE",
  "Contact: <sip:905321234567@192.0.2.10:5070>",
  "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
  "Supported: replaces, timer",
  "Session-Expires: 1800",
  "Min-SE: 90",
  "User-Agent: Carrier-SBC/4.2",
  "Content-Type: application/sdp",
  `Content-Length: ${SDP.length}`,
  "",
  SDP,
].join("\r\n"));

export interface Figures {
  readonly opsPerSecond: number;
  readonly medianUs: number;
  readonly p99Us: number;
}

/** Times `op` in batches; per-message figures are batch time / batch size. */
export function measure(op: () => unknown, batches = 400, batchSize = 100): Figures {
  for (let i = 0; i < 2000; i++) op(); // warm up the JIT
  const perMessage: number[] = [];
  let total = 0;
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batchSize; i++) op();
    const dt = performance.now() - t0;
    total += dt;
    perMessage.push((dt * 1000) / batchSize);
  }
  perMessage.sort((a, b) => a - b);
  const at = (q: number) =>
    perMessage[Math.min(perMessage.length - 1, Math.floor(q * perMessage.length))] ?? 0;
  return { opsPerSecond: (batches * batchSize) / (total / 1000), medianUs: at(0.5), p99Us: at(0.99) };
}

export function codecBench(): string[] {
  const message: SipMessage = parseMessage(TYPICAL_INVITE);
  // A JSON document of the same byte size: the INVITE's headers and body as JSON.
  const asJson = JSON.stringify({ headers: message.headers, body: SDP });
  const padded = asJson.length < TYPICAL_INVITE.length
    ? JSON.stringify({
      headers: message.headers,
      body: SDP,
      pad: "x".repeat(TYPICAL_INVITE.length - asJson.length - 10),
    })
    : asJson;
  const jsonValue = JSON.parse(padded);
  const parse = measure(() => parseMessage(TYPICAL_INVITE));
  const jsonParse = measure(() => JSON.parse(padded));
  const serialize = measure(() => serializeMessage(message));
  const jsonStringify = measure(() => JSON.stringify(jsonValue));
  const row = (name: string, f: Figures, base: Figures) =>
    `${name.padEnd(34)} ${Math.round(f.opsPerSecond).toString().padStart(9)}/s  median ${
      f.medianUs.toFixed(2)
    } µs  p99 ${f.p99Us.toFixed(2)} µs  ratio to baseline ${(f.opsPerSecond / base.opsPerSecond).toFixed(2)}`;
  // The SDP answer of every call: ours (sdp-transform parses the offer, the answer is
  // written directly) beside sdp-transform parsing and writing it with its general writer.
  const offer = new TextEncoder().encode(SDP);
  const answer = measure(() => answerOffer(offer, "203.0.113.5", 10000));
  const generalAnswer = measure(() => {
    const parsed = sdpTransform.parse(SDP);
    const audio = parsed.media[0] as sdpTransform.MediaDescription;
    return new TextEncoder().encode(sdpTransform.write({
      ...parsed,
      origin: {
        ...parsed.origin as sdpTransform.SessionDescription["origin"] & object,
        address: "203.0.113.5",
      },
      media: [{ ...audio, port: 10000 }],
    }));
  });
  return [
    `codec: typical INVITE with SDP, ${TYPICAL_INVITE.length} bytes; baseline JSON of ${padded.length} bytes`,
    row("parse INVITE", parse, jsonParse),
    row("  baseline JSON.parse", jsonParse, jsonParse),
    row("serialize INVITE", serialize, jsonStringify),
    row("  baseline JSON.stringify", jsonStringify, jsonStringify),
    row("SDP answer", answer, generalAnswer),
    row("  baseline sdp-transform parse+write", generalAnswer, generalAnswer),
  ];
}
