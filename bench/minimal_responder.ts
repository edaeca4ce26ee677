// The baseline for the call bench: the least a Deno UDP server can do for the same
// SIPp scenario. INVITE -> 200 with SDP (headers copied by string slicing), BYE -> 200,
// ACK ignored. No parsing beyond lines, no transactions, no backends, no events.
const port = Number(Deno.args[0] ?? "5070");
const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SDP =
  "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\n" +
  "a=rtpmap:101 telephone-event/8000\r\n";
// deno-lint-ignore no-console
console.log(`minimal responder ready on ${port}`);
for (;;) {
  const [bytes, addr] = await socket.receive();
  const text = decoder.decode(bytes);
  const method = text.slice(0, text.indexOf(" "));
  if (method !== "INVITE" && method !== "BYE") continue;
  let head = "SIP/2.0 200 OK\r\n";
  for (const line of text.slice(0, text.indexOf("\r\n\r\n")).split("\r\n").slice(1)) {
    const name = line.slice(0, line.indexOf(":")).toLowerCase();
    if (name === "via" || name === "from" || name === "call-id" || name === "cseq") head += line + "\r\n";
    else if (name === "to") head += method === "INVITE" ? `${line};tag=min1\r\n` : `${line}\r\n`;
  }
  head += `Contact: <sip:127.0.0.1:${port}>\r\n`;
  const body = method === "INVITE" ? SDP : "";
  if (body !== "") head += "Content-Type: application/sdp\r\n";
  head += `Content-Length: ${body.length}\r\n\r\n${body}`;
  await socket.send(encoder.encode(head), addr);
}
