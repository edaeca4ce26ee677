// Abusive HTTP/2 clients against a gRPC server, run by Node as a child process:
//   node tests/abuse/grpc_abuse_node.mjs HOST PORT ROUNDS
// Each round does one of: unary TerminateCall calls with 16 in flight, then the
// session closed or destroyed with streams still open; a TCP reset mid-preface or
// mid-stream; garbage bytes; half a preface left hanging. Prints one JSON line.
import http2 from "node:http2";
import net from "node:net";

const [host, portText, roundsText] = process.argv.slice(2);
const port = Number(portText);
const rounds = Number(roundsText ?? "200");
const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** A gRPC-framed TerminateCallRequest { call_id, reason }. */
function terminateCallFrame(callId) {
  const id = Buffer.from(callId);
  const reason = Buffer.from("abuse");
  const message = Buffer.concat([
    Buffer.from([0x0a, id.length]),
    id,
    Buffer.from([0x12, reason.length]),
    reason,
  ]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function unaryBurst(destroy) {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${host}:${port}`);
    session.on("error", () => {});
    let answered = 0;
    for (let i = 0; i < 16; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/sentiric.sip.v1.SipSignalingService/TerminateCall",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.on("response", () => answered++);
      stream.end(terminateCallFrame(`abuse-${i}`));
    }
    // Leave while streams are in flight: after a few ms, close (GOAWAY) or destroy.
    setTimeout(() => {
      if (destroy) session.destroy();
      else session.close();
      resolve(answered);
    }, Math.random() * 5);
  });
}

function rawSocket(bytes, { reset = false, holdMs = 0 } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, async () => {
      socket.write(bytes);
      if (holdMs > 0) await sleep(holdMs);
      if (reset) socket.resetAndDestroy();
      else socket.destroy();
      resolve();
    });
    socket.on("error", () => resolve());
  });
}

const counts = { burstClose: 0, burstDestroy: 0, reset: 0, garbage: 0, halfPreface: 0 };
const only = process.env.ABUSE_ONLY === undefined ? undefined : Number(process.env.ABUSE_ONLY);
for (let round = 0; round < rounds; round++) {
  switch (only ?? round % 5) {
    case 0:
      await unaryBurst(false);
      counts.burstClose++;
      break;
    case 1:
      await unaryBurst(true);
      counts.burstDestroy++;
      break;
    case 2:
      await rawSocket(Buffer.from(PREFACE + "\x00\x00\x12\x04\x00\x00\x00\x00\x00"), { reset: true });
      counts.reset++;
      break;
    case 3:
      await rawSocket(Buffer.from(Array.from({ length: 512 }, () => Math.floor(Math.random() * 256))));
      counts.garbage++;
      break;
    default:
      await rawSocket(Buffer.from(PREFACE.slice(0, 1 + Math.floor(Math.random() * 20))), { holdMs: 5 });
      counts.halfPreface++;
  }
}
// deno-lint-ignore no-console
console.log(JSON.stringify({ client: "node", rounds, ...counts }));
