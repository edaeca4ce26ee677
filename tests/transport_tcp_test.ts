// SIP over TCP in one process (sip/transport_tcp.ts, transport_stream.ts): a real
// loopback socket into a SIP endpoint whose UAS core answers OPTIONS. Framing across
// and within writes, keep-alive, refusals, limits and timeouts, as a peer sees them.
import assert from "node:assert/strict";
import { SipEndpoint, type StreamLimits, TcpTransport, UasCore } from "../sip/mod.ts";
import { optionsRequest, SipStreamClient } from "./e2e/stream_client.ts";

interface Fixture extends AsyncDisposable {
  readonly port: number;
  readonly transport: TcpTransport;
  readonly endpoint: SipEndpoint;
  readonly requests: string[];
}

function serve(limits: Partial<StreamLimits> = {}, allows?: (h: string) => boolean): Fixture {
  const transport = TcpTransport.listen({
    hostname: "127.0.0.1",
    port: 0,
    limits,
    ...(allows === undefined ? {} : { allows }),
  });
  const endpoint = new SipEndpoint([transport]);
  const requests: string[] = [];
  endpoint.start(
    new UasCore(endpoint.transactions, {
      onRequest: (request, tx) => {
        requests.push(request.method);
        // INFO is answered 200 ms late: time for its connection to close first.
        const answer = () =>
          tx.respond({
            kind: "response",
            status: 200,
            reason: "OK",
            via: request.via,
            from: request.from,
            to: request.to,
            callId: request.callId,
            cseq: request.cseq,
            headers: [],
            body: new Uint8Array(0),
          } as never);
        if (request.method === "INFO") setTimeout(answer, 200);
        else answer();
      },
      onAck: () => {},
    }, { allow: ["OPTIONS", "INFO"], supported: [], accept: ["application/sdp"], serverName: "" }),
  );
  return {
    port: transport.local.port,
    transport,
    endpoint,
    requests,
    async [Symbol.asyncDispose]() {
      await endpoint.close();
    },
  };
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `tcp - ${name}`, sanitizeOps: false, sanitizeResources: false }, fn);

test("a message split over many writes is answered once, on its connection", async () => {
  await using f = serve();
  await using c = await SipStreamClient.connect(f.port);
  const text = optionsRequest(f.port, c.local);
  for (
    const piece of [text.slice(0, 7), text.slice(7, 60), text.slice(60, text.length - 1), text.slice(-1)]
  ) {
    await c.write(piece);
    await new Promise((r) => setTimeout(r, 20));
  }
  const reply = await c.next(/^SIP\/2\.0 200/);
  assert.ok(reply, "200 on the same connection");
  assert.match(reply, /Via: SIP\/2\.0\/TCP 127\.0\.0\.1:\d+;branch=[^;]+;received=127\.0\.0\.1;rport=\d+/);
  assert.equal(await c.next(/./, 300), undefined, "answered once");
});

test("two messages in one write are both answered, in order", async () => {
  await using f = serve();
  await using c = await SipStreamClient.connect(f.port);
  const first = optionsRequest(f.port, c.local, "TCP", "first");
  const second = optionsRequest(f.port, c.local, "TCP", "second");
  await c.write(first + second);
  const a = await c.next(/^SIP\/2\.0 200/);
  const b = await c.next(/^SIP\/2\.0 200/);
  assert.match(a ?? "", /tag=first/);
  assert.match(b ?? "", /tag=second/);
});

test("a double-CRLF ping gets a CRLF pong (RFC 5626 4.4.1) and the connection stays", async () => {
  await using f = serve();
  await using c = await SipStreamClient.connect(f.port);
  await c.write("\r\n\r\n");
  for (let i = 0; i < 50 && c.pongs === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(c.pongs, 1);
  await c.write(optionsRequest(f.port, c.local));
  assert.ok(await c.next(/^SIP\/2\.0 200/), "still served after the ping");
});

test("a message without Content-Length gets 400 and the connection is closed", async () => {
  await using f = serve();
  await using c = await SipStreamClient.connect(f.port);
  await c.write(optionsRequest(f.port, c.local).replace("Content-Length: 0\r\n", ""));
  const reply = await c.next(/^SIP\/2\.0/);
  assert.match(reply ?? "", /^SIP\/2\.0 400 Missing Content-Length/);
  assert.ok(await c.waitClosed(2000), "closed after the 400");
  assert.equal(f.endpoint.counters.dropped.parse_error, 1);
  assert.equal(f.transport.counters.closed.framing, 1);
});

test("a 70 KB body gets 513 and the next message on the connection is answered", async () => {
  await using f = serve();
  await using c = await SipStreamClient.connect(f.port);
  const big = "x".repeat(70 * 1024);
  const huge = optionsRequest(f.port, c.local, "TCP", "huge")
    .replace("Content-Length: 0\r\n", `Content-Type: text/plain\r\nContent-Length: ${big.length}\r\n`) + big;
  await c.write(huge + optionsRequest(f.port, c.local, "TCP", "after"));
  assert.match(await c.next(/^SIP\/2\.0/) ?? "", /^SIP\/2\.0 513 Message Too Large[\s\S]*tag=huge/);
  assert.match(await c.next(/^SIP\/2\.0/) ?? "", /^SIP\/2\.0 200[\s\S]*tag=after/);
  assert.equal(f.endpoint.counters.dropped.oversize, 1);
});

test("garbage closes that connection only; others are served", async () => {
  await using f = serve({ maxHeaderBytes: 4096 });
  await using bad = await SipStreamClient.connect(f.port);
  await using good = await SipStreamClient.connect(f.port);
  await bad.write(crypto.getRandomValues(new Uint8Array(8192)));
  assert.ok(await bad.waitClosed(3000), "garbage connection closed");
  await good.write(optionsRequest(f.port, good.local));
  assert.ok(await good.next(/^SIP\/2\.0 200/), "the other connection is unharmed");
});

test("a source outside the allowlist is closed at accept, unanswered", async () => {
  await using f = serve({}, () => false);
  await using c = await SipStreamClient.connect(f.port);
  await c.write(optionsRequest(f.port, c.local)).catch(() => {});
  assert.ok(await c.waitClosed(2000));
  assert.equal(await c.next(/./, 100), undefined);
  assert.equal(f.transport.counters.refused.not_allowed, 1);
});

test("connections beyond the per-source limit are closed at accept", async () => {
  await using f = serve({ maxConnectionsPerSource: 3 });
  const clients = await Promise.all([0, 1, 2, 3, 4].map(() => SipStreamClient.connect(f.port)));
  try {
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(clients.filter((c) => c.closed).length, 2);
    assert.equal(f.transport.counters.refused.source_limit, 2);
    assert.equal(f.transport.connectionCount, 3);
    const open = clients.find((c) => !c.closed)!;
    await open.write(optionsRequest(f.port, open.local));
    assert.ok(await open.next(/^SIP\/2\.0 200/));
  } finally {
    for (const c of clients) await c[Symbol.asyncDispose]();
  }
});

test("a half-sent message and a silent connection are closed after the message timeout", async () => {
  await using f = serve({ messageTimeoutMs: 300 });
  await using half = await SipStreamClient.connect(f.port);
  await using silent = await SipStreamClient.connect(f.port);
  await using busy = await SipStreamClient.connect(f.port);
  await half.write(optionsRequest(f.port, half.local).slice(0, 100));
  await busy.write(optionsRequest(f.port, busy.local));
  assert.ok(await busy.next(/^SIP\/2\.0 200/));
  assert.ok(await half.waitClosed(2000), "half-sent closed");
  assert.ok(await silent.waitClosed(2000), "silent closed");
  assert.equal(f.transport.counters.closed.message_timeout, 2);
  assert.ok(!busy.closed, "a connection that sent a whole message is left to the idle timeout");
});

test("an idle connection is closed after the idle timeout", async () => {
  await using f = serve({ idleTimeoutMs: 300 });
  await using c = await SipStreamClient.connect(f.port);
  await c.write(optionsRequest(f.port, c.local));
  assert.ok(await c.next(/^SIP\/2\.0 200/));
  assert.ok(await c.waitClosed(3000));
  assert.equal(f.transport.counters.closed.idle_timeout, 1);
});

test("a response whose connection closed goes over a new one to the Via's sent-by port", async () => {
  await using f = serve();
  // The peer listens where its Via says; the request leaves from another connection.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sentBy = listener.addr;
  const c = await SipStreamClient.connect(f.port);
  const text = optionsRequest(f.port, { ...sentBy, transport: "tcp" })
    .replace("OPTIONS sip:", "INFO sip:")
    .replace("CSeq: 1 OPTIONS", "CSeq: 1 INFO");
  await c.write(text);
  c.close();
  await c.ended;
  const accepted = await Promise.race([
    listener.accept(),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000)),
  ]);
  listener.close();
  assert.ok(accepted, "the service opened a connection to the sent-by");
  await using back = SipStreamClient.over(accepted);
  assert.match(await back.next(/^SIP\/2\.0/) ?? "", /^SIP\/2\.0 200/);
  assert.equal(f.transport.counters.opened, 1);
});
