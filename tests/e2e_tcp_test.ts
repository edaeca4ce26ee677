// End to end over TCP (RFC 3261 section 18): SIPp calls the service with `-t t1` (one
// connection for every call, as a gateway keeps) and `-t tn` (one per call); a raw
// peer splits, joins and drops connections; hostile streams leave the service serving.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  e2eTest,
  EventConsumer,
  missingPeers,
  RABBITMQ_URL,
  scenarioFrom,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";
import { optionsRequest, SipStreamClient } from "./e2e/stream_client.ts";

const skip = await missingPeers();

/** An INVITE over TCP from `local`, whose Contact names `contactPort` (where the test listens). */
function invite(
  port: number,
  local: Deno.NetAddr,
  callId: string,
  number: string,
  contactPort: number,
): string {
  const sdp = [
    "v=0",
    `o=caller 1 1 IN IP4 ${local.hostname}`,
    "s=-",
    `c=IN IP4 ${local.hostname}`,
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 8",
    "",
  ].join("\r\n");
  return [
    `INVITE sip:${number}@127.0.0.1:${port};transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP ${local.hostname}:${local.port};branch=z9hG4bK${crypto.randomUUID().slice(0, 8)};rport`,
    "Max-Forwards: 70",
    `From: <sip:905321234567@${local.hostname}>;tag=raw`,
    `To: <sip:${number}@127.0.0.1:${port}>`,
    `Call-ID: ${callId}`,
    "CSeq: 1 INVITE",
    `Contact: <sip:905321234567@127.0.0.1:${contactPort};transport=tcp>`,
    "Content-Type: application/sdp",
    `Content-Length: ${sdp.length}`,
    "",
    sdp,
  ].join("\r\n");
}

/** ACK or CANCEL for the INVITE `sent` (same branch for CANCEL, section 9.1). */
function follow(method: "ACK" | "CANCEL", sent: string, toTag = ""): string {
  const line = (name: string) => new RegExp(`^${name}: .*$`, "m").exec(sent)?.[0] ?? "";
  const uri = /^INVITE (\S+)/.exec(sent)?.[1];
  return [
    `${method} ${uri} SIP/2.0`,
    line("Via"),
    "Max-Forwards: 70",
    line("From"),
    line("To") + (toTag === "" ? "" : `;tag=${toTag}`),
    line("Call-ID"),
    `CSeq: 1 ${method}`,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

e2eTest(
  "e2e - SIP over TCP: SIPp t1 and tn calls, TerminateCall, CANCEL, errors, big INVITE",
  skip,
  async (t) => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService({
      DIALPLAN_SERVICE_TARGET_GRPC_URL: backends.dialplanUrl,
      MEDIA_SERVICE_TARGET_GRPC_URL: backends.mediaUrl,
      USER_SERVICE_TARGET_GRPC_URL: backends.userUrl,
      RABBITMQ_URL,
      SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "1000",
    });

    for (const mode of ["t1", "tn"]) {
      await t.step(
        `SIPp -t ${mode}: 6 calls set up and torn down, every event published, ports released`,
        async () => {
          const before = consumer.events.length;
          const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
            "-t",
            mode,
            "-s",
            "905551112233",
            "-m",
            "6",
            "-r",
            "6",
            "-l",
            "3",
            "-d",
            "200",
            "-max_socket",
            "100",
          ]);
          assert.equal(r.code, 0, r.stdout);
          const ended = await waitFor(() => {
            const n = consumer.events.slice(before).filter((e) => e.routingKey === "call.ended").length;
            return n === 6 ? n : undefined;
          }, 5000);
          assert.equal(ended, 6);
          const kinds = consumer.events.slice(before).map((e) => e.routingKey);
          assert.equal(kinds.filter((k) => k === "call.started").length, 6);
          assert.equal(kinds.filter((k) => k === "call.answered").length, 6);
          assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "ports released");
        },
      );
    }

    await t.step(
      "our Contact says transport=tcp and TerminateCall's BYE reaches SIPp on its connection",
      async () => {
        const before = consumer.events.length;
        const caller = sipp(scenarioPath("uac_wait_bye.xml"), service.sipPort, [
          "-t",
          "t1",
          "-s",
          "905551112233",
          "-trace_msg",
        ]);
        const started = await waitFor(() =>
          consumer.events.slice(before).find((e) => e.routingKey === "call.started")
        );
        assert.ok(started);
        const callId = String(started.body.callId);
        await waitFor(() => consumer.forCall(callId).some((e) => e.routingKey === "call.answered"));
        assert.deepEqual(await terminateCall(service.grpcPort, callId, "completed_by_agent"), {
          success: true,
          message: "BYE sent",
        });
        const result = await caller;
        assert.equal(result.code, 0, result.stdout);
        assert.match(result.messages, /Contact: <sip:127\.0\.0\.1:\d+;transport=tcp>/);
        assert.match(
          result.messages,
          /BYE sip:905321234567@127\.0\.0\.1:\d+ SIP\/2\.0\r?\nVia: SIP\/2\.0\/TCP /,
        );
        const ended = await waitFor(() =>
          consumer.forCall(callId).find((e) => e.routingKey === "call.ended")
        );
        assert.equal(ended?.body.reason, "completed_by_agent");
      },
    );

    for (
      const c of [
        { number: "905550000999", status: 404 },
        { number: "905550000000", status: 480 },
        { number: "905550000408", status: 503 },
      ]
    ) {
      await t.step(`error table over TCP: ${c.number} -> ${c.status}, nothing published`, async () => {
        const before = consumer.events.length;
        const scenario = await scenarioFrom("uac_reject.xml", {
          STATUS: String(c.status),
          FROM: "905321234567",
          CODECS: "0 8 101",
          SE: "1800",
        });
        const r = await sipp(scenario, service.sipPort, ["-t", "t1", "-s", c.number]);
        await Deno.remove(scenario);
        assert.equal(r.code, 0, r.stdout);
        assert.match(r.log, new RegExp(`status=${c.status}`));
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(consumer.events.slice(before).map((e) => e.routingKey), []);
        assert.equal(backends.ports.allocated.size, 0);
      });
    }

    await t.step(
      "a 4.5 KB carrier INVITE (STIR/SHAKEN Identity, History-Info) is answered over TCP",
      async () => {
        const base = await Deno.readTextFile(scenarioPath("uac_call.xml"));
        const identity = `Identity: ${
          "eyJhbGciOiJFUzI1NiJ9".repeat(175)
        };info=<https://cert.example/c.pem>;alg=ES256;ppt=shaken`;
        const history = `History-Info: ${
          Array.from(
            { length: 12 },
            (_, i) => `<sip:90555111${String(i).padStart(4, "0")}@carrier.example>;index=1.${i}`,
          )
            .join(", ")
        }`;
        const scenario = await Deno.makeTempFile({ suffix: ".xml" });
        await Deno.writeTextFile(
          scenario,
          base.replace("Supported: timer\n", `Supported: timer\n      ${identity}\n      ${history}\n`),
        );
        const r = await sipp(scenario, service.sipPort, ["-t", "t1", "-s", "905551112233", "-trace_msg"]);
        await Deno.remove(scenario);
        assert.equal(r.code, 0, r.stdout);
        const sent = /INVITE sip:[\s\S]*?(?=\n-{10,}|\n\n\n)/.exec(r.messages)?.[0] ?? "";
        assert.ok(sent.length > 4500, `INVITE of ${sent.length} bytes`);
      },
    );

    await t.step("SIPp -t t1 CANCEL: 200 for the CANCEL, 487 for the INVITE, nothing published", async () => {
      const before = consumer.events.length;
      const r = await sipp(scenarioPath("uac_cancel.xml"), service.sipPort, [
        "-t",
        "t1",
        "-s",
        "905550000408",
      ]);
      assert.equal(r.code, 0, r.stdout);
      await new Promise((r) => setTimeout(r, 2300)); // the dialplan's answer comes at 2 s
      assert.deepEqual(consumer.events.slice(before).map((e) => e.routingKey), []);
      assert.equal(backends.ports.allocated.size, 0);
    });

    await t.step("CANCEL from a raw peer over TCP: the same, on one connection", async () => {
      await using c = await SipStreamClient.connect(service.sipPort);
      const text = invite(
        service.sipPort,
        c.local,
        `cancel-${crypto.randomUUID()}@tcp`,
        "905550000408",
        c.local.port,
      );
      await c.write(text);
      assert.match(await c.next(/^SIP\/2\.0 100/) ?? "", /CSeq: 1 INVITE/);
      await c.write(follow("CANCEL", text));
      assert.match(await c.next(/^SIP\/2\.0 200[\s\S]*CSeq: 1 CANCEL/) ?? "", /200/);
      const final = await c.next(/^SIP\/2\.0 487/);
      assert.ok(final, "487 Request Terminated");
      await c.write(follow("ACK", text, /^To: .*;tag=([^;\s]+)/m.exec(final)?.[1] ?? ""));
      await new Promise((r) => setTimeout(r, 2300)); // the dialplan's answer comes at 2 s
      assert.equal(backends.ports.allocated.size, 0);
    });

    await t.step("a message split over many writes and two in one write: each answered", async () => {
      await using c = await SipStreamClient.connect(service.sipPort);
      const one = optionsRequest(service.sipPort, c.local, "TCP", "one");
      for (let i = 0; i < one.length; i += 50) {
        await c.write(one.slice(i, i + 50));
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.match(await c.next(/^SIP\/2\.0/) ?? "", /^SIP\/2\.0 200[\s\S]*tag=one/);
      await c.write(
        optionsRequest(service.sipPort, c.local, "TCP", "two") +
          optionsRequest(service.sipPort, c.local, "TCP", "three"),
      );
      assert.match(await c.next(/tag=two/) ?? "", /^SIP\/2\.0 200/);
      assert.match(await c.next(/tag=three/) ?? "", /^SIP\/2\.0 200/);
    });

    await t.step(
      "the caller's connection drops mid-call: our BYE opens a new one to its Contact",
      async () => {
        const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const contactPort = listener.addr.port;
        const c = await SipStreamClient.connect(service.sipPort);
        const callId = `drop-${crypto.randomUUID()}@tcp`;
        const text = invite(service.sipPort, c.local, callId, "905551112233", contactPort);
        await c.write(text);
        const ok = await c.next(/^SIP\/2\.0 200/);
        assert.ok(ok, "200 OK");
        await c.write(follow("ACK", text, /^To: .*;tag=([^;\s]+)/m.exec(ok)?.[1] ?? ""));
        await waitFor(() => consumer.forCall(callId).some((e) => e.routingKey === "call.answered"));
        c.close();
        await c.ended;
        const accepting = listener.accept();
        const r = await terminateCall(service.grpcPort, callId, "completed_by_agent");
        assert.equal(r.success, true);
        const conn = await accepting;
        listener.close();
        await using back = SipStreamClient.over(conn);
        const bye = await back.next(/^BYE /);
        assert.ok(bye, "BYE on a new connection");
        assert.match(
          bye,
          new RegExp(`^BYE sip:905321234567@127\\.0\\.0\\.1:${contactPort};transport=tcp SIP/2\\.0`),
        );
        const byeHeaders = bye.split("\r\n");
        const reply = [
          "SIP/2.0 200 OK",
          ...byeHeaders.filter((l) => /^(Via|From|To|Call-ID|CSeq):/.test(l)),
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n");
        await back.write(reply);
        const ended = await waitFor(() =>
          consumer.forCall(callId).find((e) => e.routingKey === "call.ended")
        );
        assert.equal(ended?.body.reason, "completed_by_agent");
        assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "port released");
        assert.ok(
          await serviceMetric(
            service.httpPort,
            'sip_signaling_sip_connections_opened_total{transport="TCP"}',
          ) >= 1,
        );
      },
    );
  },
);

e2eTest(
  "e2e - hostile TCP streams: half-sent, 1,000 idle, garbage, 70 KB; calls still served",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService({
      DIALPLAN_SERVICE_TARGET_GRPC_URL: backends.dialplanUrl,
      MEDIA_SERVICE_TARGET_GRPC_URL: backends.mediaUrl,
      RABBITMQ_URL,
      SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE: "200",
    });
    const port = service.sipPort;
    // A message begun and never finished, held open.
    await using half = await SipStreamClient.connect(port);
    await half.write(optionsRequest(port, half.local).slice(0, 120));
    // 1,000 connections that say nothing, from another loopback address.
    const idle = await Promise.all(
      Array.from(
        { length: 1000 },
        () => SipStreamClient.connect(port, "127.0.0.1", "127.0.0.2").catch(() => undefined),
      ),
    );
    // Garbage, then a 70 KB message followed by a good one on the same connection.
    await using garbage = await SipStreamClient.connect(port);
    await garbage.write(crypto.getRandomValues(new Uint8Array(32 * 1024)));
    await using big = await SipStreamClient.connect(port);
    const body = "x".repeat(70 * 1024);
    await big.write(
      optionsRequest(port, big.local, "TCP", "big").replace(
        "Content-Length: 0\r\n",
        `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n`,
      ) + body + optionsRequest(port, big.local, "TCP", "next"),
    );
    assert.match(await big.next(/tag=big/) ?? "", /^SIP\/2\.0 513/);
    assert.match(await big.next(/tag=next/) ?? "", /^SIP\/2\.0 200/);
    assert.ok(await garbage.waitClosed(3000), "garbage closed");

    // Calls go on meanwhile, over TCP and UDP.
    const tcpCalls = await sipp(scenarioPath("uac_call.xml"), port, [
      "-t",
      "t1",
      "-s",
      "905551112233",
      "-m",
      "3",
    ]);
    assert.equal(tcpCalls.code, 0, tcpCalls.stdout);
    const udpCalls = await sipp(scenarioPath("uac_call.xml"), port, ["-s", "905551112233", "-m", "3"]);
    assert.equal(udpCalls.code, 0, udpCalls.stdout);

    const refused = await serviceMetric(
      port === 0 ? 0 : service.httpPort,
      'sip_signaling_sip_connections_refused_total{transport="TCP",reason="source_limit"}',
    );
    assert.equal(refused, 800, "beyond 200 from one source refused at accept");
    // Within the 10 s message timeout: the half-sent message and the silent connections are closed.
    assert.ok(await half.waitClosed(15_000), "half-sent message closed");
    const open = () => idle.filter((c) => c !== undefined && !c.closed).length;
    assert.ok(await waitFor(() => open() === 0, 5000), `${open()} idle connections still open`);
    assert.ok(
      await serviceMetric(
        service.httpPort,
        'sip_signaling_sip_connections_closed_total{transport="TCP",reason="message_timeout"}',
      ) >=
        201,
    );
    for (const c of idle) await c?.[Symbol.asyncDispose]();
    const after = await sipp(scenarioPath("uac_call.xml"), port, ["-t", "t1", "-s", "905551112233"]);
    assert.equal(after.code, 0, after.stdout);
    big.close(); // the only one left: it sent whole messages, so only the idle timeout would close it
    const gauge = () => serviceMetric(service.httpPort, 'sip_signaling_sip_connections{transport="TCP"}');
    assert.equal(
      await waitFor(async () => (await gauge()) === 0 ? 0 : undefined, 3000),
      0,
      "no connection left",
    );
    assert.ok(consumer.events.some((e) => e.routingKey === "call.ended"));
  },
);
