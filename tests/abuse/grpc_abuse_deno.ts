// Abusive clients from Deno, run as a child process:
//   deno run -A tests/abuse/grpc_abuse_deno.ts HOST PORT ROUNDS
// grpc-js clients that connect, start calls and leave (close with calls in flight),
// and node:http2 sessions destroyed with streams open. Prints one JSON line.
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { SipSignalingServiceClient } from "../../proto/gen/sentiric/sip/v1/signaling.ts";

const [host, portText, roundsText] = Deno.args;
const target = `${host}:${portText}`;
const rounds = Number(roundsText ?? "200");
const counts = { grpcLeave: 0, grpcCall: 0, http2Destroy: 0 };

for (let round = 0; round < rounds; round++) {
  if (round % 3 === 0) {
    // A grpc-js client that starts calls and leaves before the answers.
    const client = new SipSignalingServiceClient(target, grpc.credentials.createInsecure());
    for (let i = 0; i < 8; i++) client.terminateCall({ callId: `leave-${i}`, reason: "abuse" }, () => {});
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    client.close();
    counts.grpcLeave++;
  } else if (round % 3 === 1) {
    // A well-behaved call, to see the server still answers between the abuse.
    const client = new SipSignalingServiceClient(target, grpc.credentials.createInsecure());
    await new Promise<void>((resolve) =>
      client.terminateCall({ callId: "nobody", reason: "abuse" }, new grpc.Metadata(), {
        deadline: Date.now() + 2000,
      }, (e) => {
        if (e === null) counts.grpcCall++;
        resolve();
      })
    );
    client.close();
  } else {
    const session = http2.connect(`http://${target}`);
    session.on("error", () => {});
    for (let i = 0; i < 16; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/sentiric.sip.v1.SipSignalingService/TerminateCall",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.end(new Uint8Array([0, 0, 0, 0, 2, 0x0a, 0]));
    }
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    session.destroy();
    counts.http2Destroy++;
  }
}
// deno-lint-ignore no-console
console.log(JSON.stringify({ client: "deno", rounds, ...counts }));
Deno.exit(0);
