// Caller context (orchestration/caller_context.ts, CONTRACTS.md 7.2): forwarded INVITE
// headers, the caller from P-Asserted-Identity, DTMF from INFO bodies.
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseMessage, type SipRequest } from "../sip/mod.ts";
import { callerUri, dtmfOf, forwardedHeaders, HeaderPatterns } from "../orchestration/caller_context.ts";
import { requestBytes } from "./helpers.ts";

const request = (extra: string[], body = "") => parseMessage(requestBytes({ extra, body })) as SipRequest;

Deno.test("caller context - X-* headers forwarded, keys in lower case, repeats joined; others not", () => {
  const r = request([
    "X-Customer-Id: 42",
    "x-campaign: spring",
    "X-Customer-Id: 43",
    "P-Charge-Info: <sip:1@x>",
  ]);
  assert.deepEqual(forwardedHeaders(r.headers, new HeaderPatterns("X-*")), {
    "x-customer-id": "42, 43",
    "x-campaign": "spring",
  });
  assert.deepEqual(forwardedHeaders(r.headers, new HeaderPatterns("P-Charge-Info, x-campaign")), {
    "x-campaign": "spring",
    "p-charge-info": "<sip:1@x>",
  });
  assert.deepEqual(forwardedHeaders(r.headers, new HeaderPatterns("")), {});
});

Deno.test("caller context - property: exactly the headers a prefix pattern names, each value kept", () => {
  const name = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,12}$/);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), name, fc.stringMatching(/^[a-z0-9]{1,8}$/)), { maxLength: 8 }),
      (hs) => {
        const headers = hs.map(([x, n, v]) => ({ name: x ? `X-${n}` : `Y${n}`, value: v }));
        const out = forwardedHeaders(headers, new HeaderPatterns("X-*"));
        for (const h of headers) {
          const key = h.name.toLowerCase();
          if (key.startsWith("x-")) assert.ok(out[key]?.split(", ").includes(h.value));
          else assert.equal(out[key], undefined);
        }
        assert.ok(Object.keys(out).every((k) => k === k.toLowerCase()));
      },
    ),
  );
});

Deno.test("caller context - P-Asserted-Identity names the caller when present, From otherwise", () => {
  assert.equal(
    callerUri(request(['P-Asserted-Identity: "Real" <sip:+905321112233@carrier.example;user=phone>'])),
    "sip:+905321112233@carrier.example;user=phone",
  );
  assert.equal(
    callerUri(request(["P-Asserted-Identity: <tel:+905321112233>, <sip:x@carrier.example>"])),
    "tel:+905321112233",
  );
  assert.match(callerUri(request([])), /^sip:905321234567@/);
});

Deno.test("caller context - DTMF from application/dtmf-relay and application/dtmf; other bodies are not DTMF", () => {
  const info = (type: string, body: string) => request([`Content-Type: ${type}`], body);
  assert.deepEqual(dtmfOf(info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")), {
    digit: "5",
    durationMs: 160,
  });
  assert.deepEqual(dtmfOf(info("application/dtmf-relay", "Signal= #\r\nDuration= 250")), {
    digit: "#",
    durationMs: 250,
  });
  assert.deepEqual(dtmfOf(info("application/dtmf-relay", "Signal=11\r\nDuration=100")), {
    digit: "#",
    durationMs: 100,
  });
  assert.deepEqual(dtmfOf(info("application/dtmf", "*")), { digit: "*", durationMs: 0 });
  assert.deepEqual(dtmfOf(info("application/dtmf-relay", "Signal=a")), { digit: "A", durationMs: 0 });
  assert.equal(dtmfOf(info("application/dtmf-relay", "Signal=X")), undefined);
  assert.equal(dtmfOf(info("application/media_control+xml", "<x/>")), undefined);
  assert.equal(dtmfOf(request([], "")), undefined);
});
