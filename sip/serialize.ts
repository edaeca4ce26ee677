/**
 * SIP message serializer: writes the start line and header lines as they are held
 * (order, names, multiple Vias untouched), then `Content-Length` computed from the
 * body (RFC 3261 section 20.14), the empty line, and the body.
 */
import type { SipMessage } from "./message.ts";

const encoder = new TextEncoder();

export function startLineOf(message: SipMessage): string {
  return message.kind === "request"
    ? `${message.method} ${message.uri} SIP/2.0`
    : `SIP/2.0 ${message.status} ${message.reason}`;
}

export function serializeMessage(message: SipMessage): Uint8Array {
  let head = startLineOf(message) + "\r\n";
  for (const h of message.headers) head += `${h.name}: ${h.value}\r\n`;
  head += `Content-Length: ${message.body.length}\r\n\r\n`;
  if (message.body.length === 0) return encoder.encode(head);
  const out = new Uint8Array(head.length * 3 + message.body.length);
  const { written } = encoder.encodeInto(head, out);
  out.set(message.body, written);
  return out.subarray(0, written + message.body.length);
}
