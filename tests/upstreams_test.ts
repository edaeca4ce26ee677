// The gRPC clients across a backend restart (a deploy of the media or dialplan
// service): calls made while it is down wait for it within their deadline, and the
// channel reconnects within a fraction of a second of the backend coming back.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Upstreams } from "../orchestration/grpc.ts";
import { MediaServiceService } from "../proto/gen/sentiric/media/v1/media.ts";

async function mediaServer(port = 0): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(MediaServiceService, {
    allocatePort: (_call: unknown, callback: grpc.sendUnaryData<{ rtpPort: number }>) =>
      callback(null, { rtpPort: 40000 }),
    releasePort: (_call: unknown, callback: grpc.sendUnaryData<{ success: boolean }>) =>
      callback(null, { success: true }),
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (e, p) => (e ? reject(e) : resolve(p)),
    )
  );
  return { server, port: bound };
}

Deno.test({
  name: "upstreams - a call made while the backend restarts waits for it and succeeds",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const first = await mediaServer();
  const url = `127.0.0.1:${first.port}`;
  const upstreams = new Upstreams({ dialplanUrl: url, mediaUrl: url, deadlineMs: 800, mediaDeadlineMs: 800 });
  let second: grpc.Server | undefined;
  try {
    assert.equal(await upstreams.allocatePort("before@x", "t1"), 40000);
    first.server.forceShutdown();
    // Down for 200 ms. grpc-js's default backoff (1 s, up to 120 s) would have this
    // call fail at once (UNAVAILABLE) or miss its 800 ms deadline.
    const during = upstreams.allocatePort("during@x", "t2").catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    second = (await mediaServer(first.port)).server;
    assert.equal(await during, 40000, "the call made during the restart is answered");
    assert.equal(await upstreams.releasePort(40000, "t3"), true);
  } finally {
    upstreams.close();
    second?.forceShutdown();
  }
});

Deno.test({
  name: "upstreams - a backend that stays down fails the call within its deadline (-> 503)",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const gone = await mediaServer();
  gone.server.forceShutdown();
  const url = `127.0.0.1:${gone.port}`;
  const upstreams = new Upstreams({ dialplanUrl: url, mediaUrl: url, deadlineMs: 300, mediaDeadlineMs: 300 });
  try {
    const started = performance.now();
    const error = await upstreams.allocatePort("down@x", "t").then(() => undefined, (e: unknown) => e);
    const elapsed = performance.now() - started;
    assert.ok(error !== undefined, "the call fails");
    const code = (error as { code: grpc.status }).code;
    assert.ok(
      code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.UNAVAILABLE,
      `a status the failure table maps to 503 (got ${grpc.status[code]})`,
    );
    assert.ok(
      elapsed < 2000,
      `bounded by the deadline, not the reconnect backoff (${elapsed.toFixed(0)} ms)`,
    );
  } finally {
    upstreams.close();
  }
});
