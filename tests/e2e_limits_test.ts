// Bounded by design, end to end with SIPp, the real broker and reference backends: the
// longest call, the calls-up limit, a slow but healthy dialplan within the setup
// budget, and a NUL byte in a header over the wire.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  callUpUntilOurBye,
  e2eTest,
  EventConsumer,
  freeUdpPort,
  missingPeers,
  scenarioPath,
  sipp,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();

e2eTest(
  "e2e limits - a call nobody hangs up gets our BYE at SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService({
      ...backendsEnv(backends),
      SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S: "2",
    });
    const started = performance.now();
    const caller = await sipp(scenarioPath("uac_wait_bye.xml"), service.sipPort, ["-s", "905551112233"]);
    const held = performance.now() - started;
    assert.equal(caller.code, 0, `the caller got our BYE: ${caller.stdout}`);
    assert.ok(held >= 1900 && held < 6000, `after about 2 s (${Math.round(held)} ms)`);
    const ended = await waitFor(() => consumer.events.find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "max_duration");
    assert.equal(await waitFor(() => backends.ports.allocated.size === 0), true, "port released");
  },
);

e2eTest(
  "e2e limits - beyond SIP_SIGNALING_SERVICE_MAX_CALLS the caller gets 503 + Retry-After, no backend asked",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService({
      ...backendsEnv(backends),
      SIP_SIGNALING_SERVICE_MAX_CALLS: "1",
      SIP_SIGNALING_SERVICE_MAX_CALL_DURATION_S: "4",
    });
    const { caller: first } = await callUpUntilOurBye(service.sipPort, consumer);
    const asked = backends.traceIds.filter((t) => t.method === "ResolveDialplan").length;
    const second = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
      "-s",
      "905551112233",
      "-trace_msg",
    ]);
    assert.match(second.messages, /SIP\/2\.0 503[^\n]*\n(?:[^\n]*\n)*?Retry-After: \d+/, second.messages);
    assert.equal(
      backends.traceIds.filter((t) => t.method === "ResolveDialplan").length,
      asked,
      "no backend asked",
    );
    assert.equal((await first).code, 0, "the call up ran on (to its longest duration)");
  },
);

e2eTest(
  "e2e limits - a dialplan that takes 1.5 s (slow but healthy) does not fail the call",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using service = await startService(backendsEnv(backends));
    const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, ["-s", "905550001500", "-d", "100"]);
    assert.equal(r.code, 0, r.stdout);
  },
);

e2eTest(
  "e2e limits - a NUL byte in a header value gets 400 over the wire; the service goes on",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using service = await startService(backendsEnv(backends));
    const port = freeUdpPort();
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
    try {
      const invite = [
        `INVITE sip:905551112233@127.0.0.1:${service.sipPort} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-nul;rport`,
        "Max-Forwards: 70",
        "From: <sip:905321234567@127.0.0.1>;tag=nul",
        "To: <sip:905551112233@127.0.0.1>",
        "Call-ID: nul-byte@127.0.0.1",
        "CSeq: 1 INVITE",
        "Subject: hello\u0000world",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n");
      await socket.send(new TextEncoder().encode(invite), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: service.sipPort,
      });
      const [bytes] = await socket.receive();
      const answer = new TextDecoder().decode(bytes);
      assert.match(answer, /^SIP\/2\.0 400 Bad Subject Header\r\n/);
      assert.equal(backends.traceIds.length, 0, "no backend asked");
    } finally {
      socket.close();
    }
    const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, ["-s", "905551112233", "-d", "10"]);
    assert.equal(r.code, 0, "and takes the next call");
  },
);
