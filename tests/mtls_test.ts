// mTLS to a backend: the client presents its certificate, checks the server's against
// the CA and the platform's server name ("media-service") although it dials 127.0.0.1.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { MediaServiceService } from "../proto/gen/sentiric/media/v1/media.ts";
import { serverCredentials, Upstreams } from "../orchestration/grpc.ts";

const dir = new URL("./fixtures/tls/", import.meta.url);
const read = (name: string) => Deno.readFileSync(new URL(name, dir));

Deno.test({
  name: "mtls - AllocatePort over mutual TLS with the platform's server name",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const seen: string[] = [];
  const server = new grpc.Server();
  server.addService(MediaServiceService, {
    allocatePort(
      call: grpc.ServerUnaryCall<{ callId: string }, unknown>,
      cb: grpc.sendUnaryData<{ rtpPort: number }>,
    ) {
      seen.push(String(call.metadata.get("x-trace-id")[0]));
      cb(null, { rtpPort: 10042 });
    },
    releasePort(_c: unknown, cb: grpc.sendUnaryData<{ success: boolean }>) {
      cb(null, { success: true });
    },
  });
  const serverTls = { cert: read("media-service.pem"), key: read("media-service.key"), ca: read("ca.pem") };
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", serverCredentials(serverTls), (e, p) => (e ? reject(e) : resolve(p)))
  );
  const clientTls = { cert: read("client.pem"), key: read("client.key"), ca: read("ca.pem") };
  const up = new Upstreams({
    dialplanUrl: `127.0.0.1:${port}`,
    mediaUrl: `127.0.0.1:${port}`,
    deadlineMs: 5000,
    tls: clientTls,
  });
  const plain = new Upstreams({
    dialplanUrl: `127.0.0.1:${port}`,
    mediaUrl: `127.0.0.1:${port}`,
    deadlineMs: 1000,
    mediaDeadlineMs: 1000,
  });
  try {
    assert.equal(await up.allocatePort("call-1", "trace-tls"), 10042);
    assert.deepEqual(seen, ["trace-tls"]);
    await assert.rejects(plain.allocatePort("call-2", "trace-plain"), "a plaintext client is refused");
  } finally {
    up.close();
    plain.close();
    server.forceShutdown();
  }
});
