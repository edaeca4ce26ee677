// Property tests for the codec: parse(serialize(m)) equals m, garbage only ever raises
// SipParseError, and the size limits hold.
import assert from "node:assert/strict";
import fc from "fast-check";
import { buildRequest, interpretFrame, parseMessage, serializeMessage, SipParseError } from "../sip/mod.ts";
import type { SipHeader, SipMessage } from "../sip/mod.ts";

const alnum = fc.stringMatching(/^[a-zA-Z0-9]{1,12}$/);
const token = fc.stringMatching(/^[a-zA-Z0-9\-.!%*_+`'~]{1,16}$/);
const host = fc.oneof(
  fc.tuple(alnum, alnum).map(([a, b]) => `${a}.${b}.example`),
  fc.ipV4(),
  fc.ipV6().map((a) => `[${a}]`),
);
const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
const hostPort = fc.tuple(host, port).map(([h, p]) => (p === undefined ? h : `${h}:${p}`));
const sipUri = fc.tuple(fc.constantFrom("sip", "sips"), fc.option(alnum, { nil: undefined }), hostPort)
  .map(([s, u, hp]) => `${s}:${u === undefined ? "" : `${u}@`}${hp}`);
const displayName = fc.option(
  fc.oneof(
    fc.array(token, { minLength: 1, maxLength: 3 }).map((ws) => ws.join(" ")),
    fc.stringMatching(/^[ -~]{0,20}$/).map((s) => `"${s.replace(/(["\\])/g, "\\$1")}"`),
  ),
  { nil: undefined },
);
const nameAddr = (withTag: boolean) =>
  fc.tuple(displayName, sipUri, withTag ? fc.option(token, { nil: undefined }) : fc.constant(undefined))
    .map(([dn, uri, tag]) =>
      `${dn === undefined ? "" : `${dn} `}<${uri}>${tag === undefined ? "" : `;tag=${tag}`}`
    );
const via = fc.tuple(fc.constantFrom("UDP", "TCP", "TLS"), hostPort, token, fc.boolean())
  .map(([t, hp, b, rport]) => `SIP/2.0/${t} ${hp};branch=z9hG4bK${b}${rport ? ";rport" : ""}`);
const headerValueText = fc.stringMatching(/^[!-~]([ -~]{0,40}[!-~])?$/);
const extensionHeader = fc.tuple(token, headerValueText).map(([n, v]): SipHeader => ({
  name: `X-${n}`,
  value: v,
}));
const method = fc.oneof(fc.constantFrom("INVITE", "ACK", "BYE", "OPTIONS", "CANCEL", "INFO"), token);

const request = fc.record({
  method,
  uri: sipUri,
  vias: fc.array(fc.array(via, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
  from: nameAddr(true),
  to: nameAddr(true),
  callId: fc.tuple(token, fc.option(host, { nil: undefined })).map((
    [a, h],
  ) => (h === undefined ? a : `${a}@${h}`)),
  seq: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  maxForwards: fc.integer({ min: 0, max: 255 }),
  extra: fc.array(extensionHeader, { maxLength: 6 }),
  body: fc.uint8Array({ maxLength: 300 }),
  compact: fc.boolean(),
}).map((r) => {
  const headers: SipHeader[] = [
    ...r.vias.map((line) => ({ name: r.compact ? "v" : "Via", value: line.join(", ") })),
    { name: r.compact ? "f" : "From", value: r.from },
    { name: r.compact ? "t" : "To", value: r.to },
    { name: r.compact ? "i" : "Call-ID", value: r.callId },
    { name: "CSeq", value: `${r.seq} ${r.method}` },
    { name: "Max-Forwards", value: String(r.maxForwards) },
    ...r.extra,
  ];
  return buildRequest({ method: r.method, uri: r.uri, headers, body: r.body });
});

const response = fc.tuple(request, fc.integer({ min: 100, max: 699 }), fc.stringMatching(/^[ -~]{0,30}$/))
  .map(([req, status, reason]): SipMessage =>
    interpretFrame({ startLine: `SIP/2.0 ${status} ${reason}`, headers: req.headers, body: req.body })
  );

Deno.test("codec - parse(serialize(m)) equals m for generated requests and responses", () => {
  fc.assert(
    fc.property(fc.oneof(request, response), (m) => {
      assert.deepEqual(parseMessage(serializeMessage(m)), m);
    }),
    { numRuns: 500 },
  );
});

Deno.test("codec - serializing twice gives the same bytes (header order and Vias kept)", () => {
  fc.assert(
    fc.property(request, (m) => {
      const once = serializeMessage(m);
      assert.deepEqual(serializeMessage(parseMessage(once)), once);
    }),
    { numRuns: 200 },
  );
});

function onlySipParseError(bytes: Uint8Array): void {
  try {
    parseMessage(bytes);
  } catch (e) {
    if (!(e instanceof SipParseError)) throw e;
  }
}

Deno.test("codec - arbitrary bytes never throw anything but SipParseError", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), onlySipParseError), { numRuns: 2000 });
});

Deno.test("codec - mutated valid messages never throw anything but SipParseError", () => {
  const mutated = fc.tuple(
    request,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    fc.nat(),
  )
    .map(([m, flips, cut]) => {
      const bytes = serializeMessage(m).slice();
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      return bytes.subarray(0, bytes.length - (cut % 20));
    });
  fc.assert(fc.property(mutated, onlySipParseError), { numRuns: 2000 });
});

const encoder = new TextEncoder();
const basic = [
  "OPTIONS sip:a@example.com SIP/2.0",
  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx",
  "From: <sip:b@example.com>;tag=1",
  "To: <sip:a@example.com>",
  "Call-ID: c1",
  "CSeq: 1 OPTIONS",
];
const message = (lines: string[]) => encoder.encode([...lines, "", ""].join("\r\n"));
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof SipParseError) return e.code;
    throw e;
  }
  return "parsed";
};

Deno.test("codec - message size limit is enforced", () => {
  const big = message([...basic, `X-Pad: ${"a".repeat(70_000)}`]);
  assert.equal(code(() => parseMessage(big, { maxLineLength: 100_000 })), "too-large");
  assert.equal(code(() => parseMessage(big, { maxMessageBytes: 80_000, maxLineLength: 100_000 })), "parsed");
});

Deno.test("codec - header count limit is enforced", () => {
  const lines = [...basic, ...Array.from({ length: 20 }, (_, i) => `X-H${i}: ${i}`)];
  assert.equal(code(() => parseMessage(message(lines), { maxHeaders: 20 })), "too-many-headers");
  assert.equal(code(() => parseMessage(message(lines), { maxHeaders: 26 })), "parsed");
});

Deno.test("codec - line length limit is enforced", () => {
  const lines = [...basic, `X-Long: ${"b".repeat(500)}`];
  assert.equal(code(() => parseMessage(message(lines), { maxLineLength: 400 })), "line-too-long");
  assert.equal(code(() => parseMessage(message(lines), { maxLineLength: 600 })), "parsed");
});

Deno.test("codec - a missing mandatory header is named", () => {
  for (const name of ["Via", "From", "To", "Call-ID", "CSeq"]) {
    const lines = basic.filter((l) => !l.startsWith(`${name}:`));
    assert.throws(() => parseMessage(message(lines)), (e: unknown) => {
      assert.ok(e instanceof SipParseError);
      assert.equal(e.code, "missing-header");
      assert.equal(e.header, name);
      return true;
    });
  }
});

Deno.test("codec - Content-Length is written from the body, extra datagram bytes dropped", () => {
  const bytes = encoder.encode([...basic, "Content-Length: 3", "", "abcdef"].join("\r\n"));
  const m = parseMessage(bytes);
  assert.deepEqual([...m.body], [...encoder.encode("abc")]);
  const text = new TextDecoder().decode(serializeMessage(m));
  assert.match(text, /\r\nContent-Length: 3\r\n\r\nabc$/);
});

Deno.test("codec - folded header lines and compact names", () => {
  const m = parseMessage(message([
    "INVITE sip:a@example.com SIP/2.0",
    "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1,",
    "  SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2",
    'f: "A, B" <sip:b@example.com>;tag=1',
    "t: sip:a@example.com",
    "i: c1",
    "CSeq: 1",
    "\tINVITE",
    'm: <sip:b@192.0.2.1>, "x,y" <sip:c@192.0.2.3;lr>;q=0.5',
  ]));
  assert.deepEqual(m.via.map((v) => v.host), ["192.0.2.1", "192.0.2.2"]);
  assert.equal(m.from.displayName, "A, B");
  assert.deepEqual(m.cseq, { seq: 1, method: "INVITE" });
});
