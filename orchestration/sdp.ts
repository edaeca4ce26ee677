/**
 * SDP offer/answer for the call (RFC 3264, RFC 4566) with sdp-transform: keep the
 * codecs we share with the caller among PCMU (0), PCMA (8) and telephone-event at
 * 8000 Hz, answer on PUBLIC_IP and the allocated RTP port, mirror hold direction.
 */
// @ts-types="@types/sdp-transform"
import * as sdpTransform from "sdp-transform";

/** The offer could not be answered: no audio stream, or no codec in common (-> 488). */
export class SdpNegotiationError extends Error {
  override readonly name = "SdpNegotiationError";
}

export interface Codec {
  readonly payload: number;
  readonly name: string;
  readonly rate: number;
  readonly fmtp?: string;
}

const PCMU: Codec = { payload: 0, name: "PCMU", rate: 8000 };
const PCMA: Codec = { payload: 8, name: "PCMA", rate: 8000 };
const TELEPHONE_EVENT: Codec = { payload: 101, name: "telephone-event", rate: 8000, fmtp: "0-16" };
const STATIC: Record<number, Codec> = { 0: PCMU, 8: PCMA };

export interface SdpAnswer {
  readonly body: Uint8Array;
  /** "ip:port" of the caller's audio, from the offer. */
  readonly callerRtpAddr: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export type Direction = "sendrecv" | "sendonly" | "recvonly" | "inactive";
const MIRROR: Record<Direction, Direction> = {
  sendrecv: "sendrecv",
  sendonly: "recvonly",
  recvonly: "sendonly",
  inactive: "inactive",
};

function ipVersion(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

/**
 * Our SDP (RFC 4566 section 5 order), written directly: the same lines sdp-transform's
 * general writer gives for this session (tests/orchestration_test.ts compares them),
 * at a fraction of its cost on every call.
 */
export function writeSdp(
  address: string,
  port: number,
  codecs: readonly Codec[],
  direction: Direction,
  version: number,
  sessionId: number = Date.now(),
): Uint8Array {
  const ip = `IN IP${ipVersion(address)} ${address}`;
  let rtpmap = "";
  let fmtp = "";
  let payloads = "";
  for (const c of codecs) {
    payloads += payloads === "" ? c.payload : ` ${c.payload}`;
    rtpmap += `a=rtpmap:${c.payload} ${c.name}/${c.rate}\r\n`;
    if (c.fmtp !== undefined) fmtp += `a=fmtp:${c.payload} ${c.fmtp}\r\n`;
  }
  return encoder.encode(
    `v=0\r\no=sentiric ${sessionId} ${version} ${ip}\r\ns=sentiric\r\nc=${ip}\r\nt=0 0\r\n` +
      `m=audio ${port} RTP/AVP ${payloads}\r\n${rtpmap}${fmtp}a=ptime:20\r\na=${direction}\r\n`,
  );
}

/** Our offer, for an INVITE without SDP (answer comes in the ACK, RFC 3261 13.2.1). */
export function createOffer(publicIp: string, port: number): Uint8Array {
  return writeSdp(publicIp, port, [PCMU, PCMA, TELEPHONE_EVENT], "sendrecv", 1);
}

/** Answers `offer` on `publicIp:port`; throws SdpNegotiationError when nothing is common. */
export function answerOffer(offer: Uint8Array, publicIp: string, port: number, version = 1): SdpAnswer {
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(decoder.decode(offer));
  } catch (cause) {
    throw new SdpNegotiationError("Offer is not SDP", { cause });
  }
  const audio = parsed.media?.find((m) => m.type === "audio" && m.port !== 0);
  if (audio === undefined) throw new SdpNegotiationError("Offer has no audio stream");
  const offered = String(audio.payloads ?? "").split(" ").filter((p) => p !== "").map(Number);
  const chosen: Codec[] = [];
  let telephoneEvent: Codec | undefined;
  for (const payload of offered) {
    const rtp = audio.rtp.find((r) => r.payload === payload);
    const name = (rtp?.codec ?? STATIC[payload]?.name ?? "").toUpperCase();
    const rate = rtp?.rate ?? STATIC[payload]?.rate;
    if (rate !== 8000) continue;
    if (name === "PCMU" || name === "PCMA") chosen.push({ payload, name, rate });
    else if (name === "TELEPHONE-EVENT" && telephoneEvent === undefined) {
      telephoneEvent = { payload, name: "telephone-event", rate, fmtp: "0-16" };
    }
  }
  if (chosen.length === 0) throw new SdpNegotiationError("No common codec (PCMU, PCMA)");
  if (telephoneEvent !== undefined) chosen.push(telephoneEvent);
  const ip = audio.connection?.ip ?? parsed.connection?.ip;
  if (ip === undefined) throw new SdpNegotiationError("Offer has no connection address");
  const direction = MIRROR[(audio.direction ?? parsed.direction ?? "sendrecv") as Direction] ?? "sendrecv";
  return {
    body: writeSdp(publicIp, port, chosen, direction, version),
    callerRtpAddr: `${ip.includes(":") ? `[${ip}]` : ip}:${audio.port}`,
  };
}
