// End to end over TLS (RFC 3261 section 26.2, `sips:`): a Node TLS client checks our
// certificate against the test CA and presents the gateway's; a call runs over it;
// clients with no certificate, a foreign one or TLS below 1.2 (OpenSSL's s_client) are refused.
import assert from "node:assert/strict";
import tls from "node:tls";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  e2eTest,
  EventConsumer,
  installSipTls,
  missingPeers,
  RABBITMQ_URL,
  serviceMetric,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";
import { nodeSocketAsConn, optionsRequest, SipStreamClient } from "./e2e/stream_client.ts";

const skip = await missingPeers();

interface ClientOptions {
  readonly fixtures: string;
  /** Client certificate file stem in the fixtures (`sip-gateway`, `rogue-client`); none: no certificate. */
  readonly identity?: string;
}

/** A TLS connection to the service, or the handshake's error. */
async function connectTls(port: number, o: ClientOptions): Promise<SipStreamClient | Error> {
  const read = (name: string) => Deno.readTextFileSync(`${o.fixtures}${name}`);
  const socket = tls.connect({
    host: "127.0.0.1",
    port,
    ca: read("sip-ca.pem"),
    ...(o.identity === undefined ? {} : { cert: read(`${o.identity}.pem`), key: read(`${o.identity}.key`) }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
  } catch (error) {
    socket.destroy();
    return error as Error;
  }
  return SipStreamClient.over(nodeSocketAsConn(socket));
}

/** Whether a connected client gets an answer to OPTIONS (TLS 1.3 reports a refused certificate only on use). */
async function optionsAnswered(client: SipStreamClient | Error, port: number): Promise<boolean> {
  if (client instanceof Error) return false;
  try {
    await client.write(optionsRequest(port, client.local, "TLS"));
  } catch {
    return false;
  }
  const answered = (await client.next(/^SIP\/2\.0 200/, 2000)) !== undefined;
  await client[Symbol.asyncDispose]();
  return answered;
}

function call(port: number, local: Deno.NetAddr, callId: string, contactPort = local.port): string {
  const sdp = [
    "v=0",
    "o=caller 1 1 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0",
    "",
  ]
    .join("\r\n");
  return [
    `INVITE sips:905551112233@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/TLS ${local.hostname}:${local.port};branch=z9hG4bK${crypto.randomUUID().slice(0, 8)};rport`,
    "Max-Forwards: 70",
    "From: <sips:905321234567@gateway.test>;tag=tls",
    `To: <sips:905551112233@127.0.0.1:${port}>`,
    `Call-ID: ${callId}`,
    "CSeq: 1 INVITE",
    `Contact: <sips:905321234567@127.0.0.1:${contactPort}>`,
    "Content-Type: application/sdp",
    `Content-Length: ${sdp.length}`,
    "",
    sdp,
  ].join("\r\n");
}

function inDialog(method: "ACK" | "BYE", invite: string, ok: string, cseq: number): string {
  const line = (text: string, name: string) => new RegExp(`^${name}: .*$`, "m").exec(text)?.[0] ?? "";
  const contact = /^Contact: <([^>]+)>/m.exec(ok)?.[1] ?? "";
  return [
    `${method} ${contact} SIP/2.0`,
    line(invite, "Via").replace(/branch=[^;]+/, `branch=z9hG4bK${crypto.randomUUID().slice(0, 8)}`),
    "Max-Forwards: 70",
    line(invite, "From"),
    line(ok, "To"),
    line(invite, "Call-ID"),
    `CSeq: ${cseq} ${method}`,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

e2eTest("e2e - SIP over TLS: mutual TLS, a sips: call, refused clients", skip, async (t) => {
  await using backends = await startReferenceServers();
  await using consumer = await EventConsumer.start();
  await using files = await installSipTls();
  await using service = await startService({ ...backendsEnv(backends), ...files.env, RABBITMQ_URL });
  const port = files.port;
  const fixtures = files.fixtures;

  await t.step("the gateway's certificate is accepted; our certificate verifies against the CA", async () => {
    const client = await connectTls(port, { fixtures, identity: "sip-gateway" });
    assert.ok(!(client instanceof Error), String(client));
    assert.ok(await optionsAnswered(client, port));
  });

  await t.step("a sips: call: Contact is sips:, ACK and BYE over TLS, events published", async () => {
    const client = await connectTls(port, { fixtures, identity: "sip-gateway" });
    assert.ok(!(client instanceof Error), String(client));
    await using c = client;
    const callId = `tls-${crypto.randomUUID()}@gateway.test`;
    const invite = call(port, c.local, callId);
    await c.write(invite);
    const ok = await c.next(/^SIP\/2\.0 200[\s\S]*CSeq: 1 INVITE/);
    assert.ok(ok, "200 OK over TLS");
    assert.match(ok, new RegExp(`^Contact: <sips:127\\.0\\.0\\.1:${port}>`, "m"));
    await c.write(inDialog("ACK", invite, ok, 1));
    await waitFor(() => consumer.forCall(callId).some((e) => e.routingKey === "call.answered"));
    await c.write(inDialog("BYE", invite, ok, 2));
    assert.ok(await c.next(/^SIP\/2\.0 200[\s\S]*CSeq: 2 BYE/), "BYE answered");
    const ended = await waitFor(() => consumer.forCall(callId).find((e) => e.routingKey === "call.ended"));
    assert.equal(ended?.body.reason, "normal_clearing");
    assert.ok(await waitFor(() => backends.ports.allocated.size === 0, 3000), "port released");
  });

  await t.step(
    "the caller's TLS connection drops mid-call: our BYE opens a new one, mutual TLS both ways",
    async () => {
      const read = (name: string) => Deno.readTextFileSync(`${fixtures}${name}`);
      // The caller listens where its Contact says, and checks our client certificate.
      const peers: { authorized: boolean; subject: string; conn: SipStreamClient }[] = [];
      const listener = tls.createServer({
        cert: read("sip-gateway.pem"),
        key: read("sip-gateway.key"),
        ca: read("sip-ca.pem"),
        requestCert: true,
        rejectUnauthorized: true,
      }, (socket) => {
        peers.push({
          authorized: socket.authorized,
          subject: String(socket.getPeerCertificate()?.subject?.CN),
          conn: SipStreamClient.over(nodeSocketAsConn(socket)),
        });
      });
      const contactPort = await new Promise<number>((resolve) =>
        listener.listen(0, "127.0.0.1", () => resolve((listener.address() as { port: number }).port))
      );
      try {
        const client = await connectTls(port, { fixtures, identity: "sip-gateway" });
        assert.ok(!(client instanceof Error), String(client));
        const callId = `tls-drop-${crypto.randomUUID()}@gateway.test`;
        const invite = call(port, client.local, callId, contactPort);
        await client.write(invite);
        const ok = await client.next(/^SIP\/2\.0 200[\s\S]*CSeq: 1 INVITE/);
        assert.ok(ok);
        await client.write(inDialog("ACK", invite, ok, 1));
        await waitFor(() => consumer.forCall(callId).some((e) => e.routingKey === "call.answered"));
        await client[Symbol.asyncDispose]();
        assert.equal((await terminateCall(service.grpcPort, callId, "completed_by_agent")).success, true);
        const peer = await waitFor(() => peers[0], 5000);
        assert.ok(peer, "our BYE came over a new TLS connection");
        assert.equal(peer.authorized, true, "with a client certificate the caller's CA signed");
        assert.equal(peer.subject, "sip-signaling.test");
        const bye = await peer.conn.next(/^BYE /);
        assert.match(
          bye ?? "",
          new RegExp(`^BYE sips:905321234567@127\\.0\\.0\\.1:${contactPort} SIP/2\\.0`),
        );
        assert.match(bye ?? "", /^Via: SIP\/2\.0\/TLS /m);
        await peer.conn.write(
          [
            "SIP/2.0 200 OK",
            ...(bye ?? "").split("\r\n").filter((l) => /^(Via|From|To|Call-ID|CSeq):/.test(l)),
            "Content-Length: 0",
            "",
            "",
          ]
            .join("\r\n"),
        );
        const ended = await waitFor(() =>
          consumer.forCall(callId).find((e) => e.routingKey === "call.ended")
        );
        assert.equal(ended?.body.reason, "completed_by_agent");
        await peer.conn[Symbol.asyncDispose]();
      } finally {
        listener.close();
      }
    },
  );

  await t.step("no client certificate, a foreign CA's, or TLS 1.1: refused", async () => {
    assert.equal(await optionsAnswered(await connectTls(port, { fixtures }), port), false, "no certificate");
    assert.equal(
      await optionsAnswered(await connectTls(port, { fixtures, identity: "rogue-client" }), port),
      false,
      "a certificate from another CA",
    );
    // Deno's own TLS client has no TLS 1.1 to offer; OpenSSL's does.
    const old = await new Deno.Command("openssl", {
      args: [
        "s_client",
        "-connect",
        `127.0.0.1:${port}`,
        "-tls1_1",
        "-cipher",
        "DEFAULT@SECLEVEL=0",
        "-cert",
        `${fixtures}sip-gateway.pem`,
        "-key",
        `${fixtures}sip-gateway.key`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(old.stdout) + new TextDecoder().decode(old.stderr);
    assert.notEqual(old.code, 0, said);
    assert.match(said, /alert handshake failure|alert protocol version/, "the service refuses TLS 1.1");
    const accepted = await serviceMetric(
      service.httpPort,
      'sip_signaling_sip_connections_accepted_total{transport="TLS"}',
    );
    assert.equal(accepted, 3, "only the three good clients so far became connections");
    const opened = await serviceMetric(
      service.httpPort,
      'sip_signaling_sip_connections_opened_total{transport="TLS"}',
    );
    assert.equal(opened, 1, "the one we opened for the BYE");
  });
});

e2eTest("e2e - SIP over TLS without a CA: no client certificate asked", skip, async () => {
  await using backends = await startReferenceServers();
  await using files = await installSipTls();
  const { SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH: _ca, ...env } = files.env;
  await using _service = await startService({ ...backendsEnv(backends), ...env });
  assert.ok(await optionsAnswered(await connectTls(files.port, { fixtures: files.fixtures }), files.port));
});
