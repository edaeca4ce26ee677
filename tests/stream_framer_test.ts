// SIP over streams (sip/stream_framer.ts): messages framed by Content-Length out of
// bytes split anywhere, keep-alive pings, and what is refused.
import assert from "node:assert/strict";
import fc from "fast-check";
import { contentLength, type Frame, StreamFramer } from "../sip/stream_framer.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function message(i: number, body: string, compact: boolean): string {
  return `OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK${i}\r\n` +
    `Call-ID: ${i}@t\r\nCSeq: ${i} OPTIONS\r\n${compact ? "l" : "Content-Length"}: ${
      enc(body).length
    }\r\n\r\n${body}`;
}

/** Feeds `bytes` split at `cuts` (positions), returns every frame. */
function feed(framer: StreamFramer, bytes: Uint8Array, cuts: number[]): Frame[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const frames: Frame[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    frames.push(...framer.push(bytes.subarray(from, p)));
    from = p;
  }
  return frames;
}

type Item = { ping: true } | { body: string; compact: boolean; leadingCrlf: boolean };

Deno.test("stream framer - any split of messages and pings gives them back whole and in order", () => {
  const item: fc.Arbitrary<Item> = fc.oneof(
    fc.constant({ ping: true as const }),
    fc.record({ body: fc.string({ maxLength: 300 }), compact: fc.boolean(), leadingCrlf: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (items, cuts) => {
      let wire = "";
      const expected: string[] = [];
      items.forEach((it, i) => {
        if ("ping" in it) {
          wire += "\r\n\r\n";
          expected.push("ping");
        } else {
          // A lone CRLF before a start line is ignored (RFC 3261 7.5).
          const m = message(i, it.body, it.compact);
          wire += (it.leadingCrlf ? "\r\n" : "") + m;
          expected.push(m);
        }
      });
      const frames = feed(new StreamFramer(), enc(wire), cuts);
      assert.deepEqual(frames.map((f) => (f.kind === "message" ? dec(f.bytes) : f.kind)), expected);
    }),
  );
});

Deno.test("stream framer - a body over the limit is refused with 513 and skipped; the next message arrives", () => {
  fc.assert(
    fc.property(fc.integer({ min: 101, max: 5000 }), fc.array(fc.nat(), { maxLength: 20 }), (size, cuts) => {
      const big = message(1, "x".repeat(size), false);
      const next = message(2, "after", false);
      const framer = new StreamFramer({ maxHeaderBytes: 1024, maxBodyBytes: 100 });
      const frames = feed(framer, enc(big + next), cuts);
      assert.equal(frames.length, 2);
      assert.deepEqual(frames[0]?.kind === "refused" && [frames[0].status, frames[0].close], [513, false]);
      assert.ok(frames[0]?.kind === "refused" && dec(frames[0].header as Uint8Array).startsWith("OPTIONS"));
      assert.equal(frames[1]?.kind === "message" && dec(frames[1].bytes), next);
    }),
  );
});

Deno.test("stream framer - no Content-Length on a stream: 400 and the connection ends", () => {
  const framer = new StreamFramer();
  const frames = framer.push(
    enc("OPTIONS sip:x@example.com SIP/2.0\r\nCall-ID: 1@t\r\n\r\n" + message(2, "", false)),
  );
  assert.equal(frames.length, 1);
  assert.ok(frames[0]?.kind === "refused" && frames[0].status === 400 && frames[0].close);
  assert.deepEqual(framer.push(enc(message(3, "", false))), [], "nothing more is read");
  const bad = new StreamFramer().push(enc("OPTIONS sip:x SIP/2.0\r\nContent-Length: 1e3\r\n\r\n"));
  assert.ok(bad[0]?.kind === "refused" && bad[0].status === 400 && bad[0].reason === "Bad Content-Length");
});

Deno.test("stream framer - a header section over the limit ends the connection, found before its end arrives", () => {
  const framer = new StreamFramer({ maxHeaderBytes: 200, maxBodyBytes: 100 });
  assert.deepEqual(framer.push(enc("OPTIONS sip:x SIP/2.0\r\n")), []);
  const frames = framer.push(enc(`X-Long: ${"a".repeat(300)}\r\n`));
  assert.ok(frames[0]?.kind === "refused" && frames[0].status === 513 && frames[0].close);
  assert.equal(framer.buffered, 0, "nothing held for it");
});

Deno.test("stream framer - Content-Length read in long and compact form, any case; two values is bad", () => {
  assert.equal(contentLength("INVITE x SIP/2.0\r\ncontent-LENGTH:  42 \r\n"), 42);
  assert.equal(contentLength("INVITE x SIP/2.0\r\nL: 7\r\n"), 7);
  assert.equal(contentLength("INVITE x SIP/2.0\r\nVia: x\r\n"), undefined);
  assert.ok(Number.isNaN(contentLength("INVITE x SIP/2.0\r\nl: 7\r\nContent-Length: 8\r\n")));
});
