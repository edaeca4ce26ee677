// The embedded reference backends run for as long as a developer's instance does:
// what they remember for tests must stay bounded.
import assert from "node:assert/strict";
import { Upstreams } from "../orchestration/grpc.ts";
import { startReferenceServers, TRACE_IDS_KEPT } from "../orchestration/reference/servers.ts";

Deno.test({
  name: "reference servers - trace ids kept are bounded, newest last",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await using backends = await startReferenceServers();
  const upstreams = new Upstreams({
    dialplanUrl: backends.dialplanUrl,
    mediaUrl: backends.mediaUrl,
    deadlineMs: 2000,
  });
  try {
    const calls = TRACE_IDS_KEPT + 25;
    for (let i = 0; i < calls; i += 50) {
      await Promise.all(
        Array.from(
          { length: Math.min(50, calls - i) },
          (_, k) => upstreams.releasePort(10000, `trace-${i + k}`),
        ),
      );
    }
    assert.equal(backends.traceIds.length, TRACE_IDS_KEPT);
    const kept = new Set(backends.traceIds.map((t) => t.traceId));
    assert.ok(kept.has(`trace-${calls - 1}`), "the newest is kept");
    assert.ok(!kept.has("trace-0"), "the oldest is forgotten");
  } finally {
    upstreams.close();
  }
});
