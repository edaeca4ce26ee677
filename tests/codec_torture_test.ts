// RFC 4475 section 3.1 as a table test: the valid messages parse (with the facts each
// one is about checked), the invalid ones are rejected with a SipParseError.
import assert from "node:assert/strict";
import {
  headerValue,
  headerValues,
  parseMessage,
  parseNameAddr,
  parseUri,
  SipParseError,
  tagOf,
} from "../sip/mod.ts";
import type { SipMessage, SipRequest } from "../sip/mod.ts";

const dir = new URL("./fixtures/torture/", import.meta.url);
const load = (kind: string, name: string) => Deno.readFileSync(new URL(`${kind}/${name}.sip`, dir));

function request(m: SipMessage): SipRequest {
  assert.equal(m.kind, "request");
  return m as SipRequest;
}

const valid: Record<string, (m: SipMessage) => void> = {
  wsinv(m) {
    const r = request(m);
    assert.equal(r.method, "INVITE");
    assert.equal(r.uri, "sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert.equal(tagOf(r.to), "1918181833n");
    assert.equal(tagOf(r.from), "98asjd8");
    assert.equal(r.from.displayName, 'J Rosenberg \\"');
    assert.equal(r.maxForwards, 68);
    assert.deepEqual(r.cseq, { seq: 9, method: "INVITE" });
    assert.deepEqual(r.via.map((v) => [v.transport, v.host]), [
      ["UDP", "192.0.2.2"],
      ["TCP", "spindle.example.com"],
      ["UDP", "192.168.255.111"],
    ]);
    assert.equal(r.via[2]?.params[0]?.value, "z9hG4bK30239");
    assert.equal(headerValue(r.headers, "Subject"), "");
    assert.equal(headerValue(r.headers, "NewFangledHeader"), "newfangled value continued newfangled value");
    const contact = parseNameAddr(headerValue(r.headers, "Contact") ?? "");
    assert.equal(contact.displayName, 'Quoted string ""');
    assert.deepEqual(contact.params.map((p) => p.name), ["newparam", "secondparam", "q"]);
    assert.equal(r.body.length, 150);
  },
  intmeth(m) {
    const r = request(m);
    assert.equal(r.method, "!interesting-Method0123456789_*+`.%indeed'~");
    const uri = parseUri(r.uri);
    assert.equal(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert.equal(uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    assert.equal(r.callId, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert.equal(r.from.displayName, "token1~` token2'+_ token3*%!.-");
    assert.equal(headerValue(r.headers, "extensionHeader-!.%*+_`'~"), "\ufeff大停電");
  },
  esc01(m) {
    const r = request(m);
    assert.equal(parseUri(r.uri).user, "sips%3Auser%40example.com");
    assert.equal(r.callId, "esc01.239409asdfakjkn23onasd0-3234");
    assert.equal(headerValue(r.headers, "Content-Type"), "application/sdp");
  },
  escnull(m) {
    const r = request(m);
    assert.equal(headerValues(r.headers, "Contact").length, 2);
    assert.equal(parseUri(r.to.uri).user, "null-%00-null");
  },
  esc02(m) {
    const r = request(m);
    assert.equal(r.method, "RE%47IST%45R");
    assert.equal(r.from.displayName, "%Z%45");
    // "C%6Fntact" is an unknown header, not a third Contact (no unescaping of names).
    assert.equal(headerValues(r.headers, "Contact").length, 2);
  },
  lwsdisp(m) {
    assert.equal(request(m).from.displayName, "caller");
  },
  longreq(m) {
    const r = request(m);
    assert.equal(r.via.length, 36);
    assert.ok((r.to.displayName ?? "").length > 300);
    assert.equal(r.body.length, 150);
  },
  dblreq(m) {
    const r = request(m);
    assert.equal(r.method, "REGISTER");
    assert.equal(r.body.length, 0);
  },
  semiuri(m) {
    const uri = parseUri(request(m).uri);
    assert.equal(uri.user, "user;par=u%40example.net");
    assert.equal(uri.host, "example.com");
    assert.equal(uri.params.length, 0);
    assert.equal(headerValues(m.headers, "Accept").length, 6);
  },
  transports(m) {
    assert.deepEqual(m.via.map((v) => v.transport), ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
  },
  mpart01(m) {
    assert.equal(m.body.length, 225);
    // The binary part survives as bytes, invalid UTF-8 included.
    const at = m.body.indexOf(0xff);
    assert.ok(at > 0 && m.body[at - 1] === 0x80);
  },
  unreason(m) {
    assert.equal(m.kind, "response");
    if (m.kind !== "response") return;
    assert.equal(m.status, 200);
    assert.equal(m.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
  },
  noreason(m) {
    assert.equal(m.kind, "response");
    if (m.kind !== "response") return;
    assert.equal(m.status, 100);
    assert.equal(m.reason, "");
  },
};

for (const [name, check] of Object.entries(valid)) {
  Deno.test(`codec - RFC 4475 3.1.1 valid message ${name} parses`, () => {
    check(parseMessage(load("valid", name)));
  });
}

// Each invalid message with what the error must name.
const invalid: Record<string, RegExp> = {
  badinv01: /'Via'.*empty parameter/,
  clerr: /Content-Length 9999 exceeds/,
  ncl: /'Content-Length'/,
  scalar02: /'(CSeq|Max-Forwards|Expires|Contact)'.*out of range|'Max-Forwards'/,
  scalarlg: /'(Retry-After|Warning|CSeq)'/,
  quotbal: /'To'.*unterminated quoted string/,
  ltgtruri: /Bad Request-URI/,
  lwsruri: /request line/,
  lwsstart: /request line/,
  trws: /request line/,
  escruri: /headers are not allowed in a Request-URI/,
  baddate: /'Date'/,
  regbadct: /'Contact'.*must be enclosed/,
  badaspec: /'To'/,
  baddn: /'From'.*display name/,
  badvers: /'Via'.*unsupported protocol|SIP version/,
  mismatch01: /'CSeq'.*does not match/,
  mismatch02: /'CSeq'.*does not match/,
  bigcode: /status line/,
};

for (const [name, expected] of Object.entries(invalid)) {
  Deno.test(`codec - RFC 4475 3.1.2 invalid message ${name} is rejected`, () => {
    assert.throws(() => parseMessage(load("invalid", name)), (e: unknown) => {
      assert.ok(e instanceof SipParseError, `not a SipParseError: ${e}`);
      assert.ok(e instanceof SyntaxError);
      assert.match(e.message, expected);
      return true;
    });
  });
}

Deno.test("codec - every fixture on disk is in the tables", () => {
  for (const [kind, table] of [["valid", valid], ["invalid", invalid]] as const) {
    const names = [...Deno.readDirSync(new URL(`${kind}/`, dir))].map((e) => e.name.replace(/\.sip$/, ""));
    assert.deepEqual(names.sort(), Object.keys(table).sort());
  }
});
