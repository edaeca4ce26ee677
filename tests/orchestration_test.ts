// Orchestration pieces that need no network: SDP offer/answer, configuration, the
// failure table, number normalisation, secret redaction.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  answerOffer,
  createOffer,
  type Direction,
  SdpNegotiationError,
  writeSdp,
} from "../orchestration/sdp.ts";
// @ts-types="@types/sdp-transform"
import * as sdpTransform from "sdp-transform";
import fc from "fast-check";
import { ConfigError, effectiveConfig, parseConfig, redactUrl } from "../orchestration/config.ts";
import { failureResponse, normalizeNumber, PlanRejectedError } from "../orchestration/call_setup.ts";
import { UpstreamError } from "../orchestration/grpc.ts";
import { batchedLineSink, redactSecrets } from "../orchestration/logging.ts";
import type { LogRecord } from "@logtape/logtape";

const enc = (s: string) => new TextEncoder().encode(s.replaceAll("\n", "\r\n"));
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const offer = (media: string, extra = "") =>
  enc(`v=0\no=c 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n${media}\n${extra}`);

Deno.test("sdp - answer keeps the common codecs in offer order, on PUBLIC_IP and the allocated port", () => {
  const a = answerOffer(
    offer("m=audio 6000 RTP/AVP 18 8 0 96", "a=rtpmap:18 G729/8000\na=rtpmap:96 telephone-event/8000\n"),
    "203.0.113.5",
    10002,
  );
  const text = dec(a.body);
  assert.match(text, /\r\nc=IN IP4 203\.0\.113\.5\r\n/);
  assert.match(text, /\r\no=\S+ \d+ 1 IN IP4 203\.0\.113\.5\r\n/);
  assert.match(
    text,
    /\r\nm=audio 10002 RTP\/AVP 8 0 96\r\n/,
    "G729 dropped, telephone-event keeps its number",
  );
  assert.match(text, /a=rtpmap:96 telephone-event\/8000/);
  assert.match(text, /a=sendrecv/);
  assert.equal(a.callerRtpAddr, "192.0.2.10:6000");
});

Deno.test("sdp - media-level c= wins over session-level; hold (sendonly) is answered recvonly", () => {
  const a = answerOffer(
    offer("m=audio 7000 RTP/AVP 0", "c=IN IP4 192.0.2.77\na=sendonly\n"),
    "203.0.113.5",
    10004,
  );
  assert.equal(a.callerRtpAddr, "192.0.2.77:7000");
  assert.match(dec(a.body), /a=recvonly/);
});

Deno.test("sdp - no common codec or no audio is a negotiation error (-> 488)", () => {
  assert.throws(
    () => answerOffer(offer("m=audio 6000 RTP/AVP 18 9"), "203.0.113.5", 10000),
    SdpNegotiationError,
  );
  assert.throws(
    () => answerOffer(offer("m=video 6000 RTP/AVP 31"), "203.0.113.5", 10000),
    SdpNegotiationError,
  );
  assert.throws(() => answerOffer(enc("not sdp at all"), "203.0.113.5", 10000), SdpNegotiationError);
});

Deno.test("sdp - IPv6 answer and our offer for an INVITE without SDP", () => {
  const a = answerOffer(
    enc("v=0\no=c 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\nm=audio 6000 RTP/AVP 0\n"),
    "2001:db8::5",
    10000,
  );
  assert.match(dec(a.body), /c=IN IP6 2001:db8::5/);
  assert.equal(a.callerRtpAddr, "[2001:db8::1]:6000");
  const o = dec(createOffer("203.0.113.5", 10006));
  assert.match(o, /m=audio 10006 RTP\/AVP 0 8 101/);
  assert.match(o, /a=fmtp:101 0-16/);
});

Deno.test("sdp - our SDP is byte for byte what sdp-transform's writer gives, for any address, port and codecs", () => {
  const codec = fc.record({
    payload: fc.integer({ min: 0, max: 127 }),
    name: fc.constantFrom("PCMU", "PCMA", "telephone-event"),
    rate: fc.constant(8000),
    fmtp: fc.constant("0-16"),
  }, { requiredKeys: ["payload", "name", "rate"] });
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6()),
      fc.integer({ min: 1, max: 65535 }),
      fc.array(codec, { minLength: 1, maxLength: 4 }),
      fc.constantFrom<Direction>("sendrecv", "sendonly", "recvonly", "inactive"),
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 0, max: 2 ** 52 }),
      (address, port, codecs, direction, version, sessionId) => {
        const ipVer = address.includes(":") ? 6 : 4;
        const expected = sdpTransform.write({
          version: 0,
          origin: { username: "sentiric", sessionId, sessionVersion: version, netType: "IN", ipVer, address },
          name: "sentiric",
          connection: { version: ipVer, ip: address },
          timing: { start: 0, stop: 0 },
          media: [{
            type: "audio",
            port,
            protocol: "RTP/AVP",
            payloads: codecs.map((c) => c.payload).join(" "),
            rtp: codecs.map((c) => ({ payload: c.payload, codec: c.name, rate: c.rate })),
            fmtp: codecs.flatMap((
              c,
            ) => (c.fmtp === undefined ? [] : [{ payload: c.payload, config: c.fmtp }])),
            ptime: 20,
            direction,
          }],
        });
        assert.equal(dec(writeSdp(address, port, codecs, direction, version, sessionId)), expected);
      },
    ),
  );
});

const PROD = {
  SIP_SIGNALING_SERVICE_PUBLIC_IP: "203.0.113.5",
  DIALPLAN_SERVICE_TARGET_GRPC_URL: "dialplan:12021",
  MEDIA_SERVICE_TARGET_GRPC_URL: "media:12031",
};

Deno.test("config - a flag for every setting wins over the environment; unknown flags are refused", async () => {
  const { FLAG_ENV_NAMES, flagName, helpText, parseFlags } = await import("../orchestration/command_line.ts");
  const cli = parseFlags(["--setup-timeout-ms=1500", "--allowed-sources", "10.0.0.0/8", "--embedded"]);
  assert.deepEqual(cli.env, {
    SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "1500",
    SIP_SIGNALING_SERVICE_ALLOWED_SOURCES: "10.0.0.0/8",
  });
  assert.equal(cli.flags.embedded, true);
  const environment: Parameters<typeof parseConfig>[0] = {
    ...PROD,
    SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "900",
  };
  const c = parseConfig({ ...environment, ...cli.env });
  assert.equal(c.setupTimeoutMs, 1500, "the flag wins");
  assert.equal(c.sip.allowedSources.toString(), "10.0.0.0/8");
  assert.throws(() => parseFlags(["--no-such-thing=1"]), ConfigError);
  assert.equal(parseFlags(["--help"]).help, true);
  assert.equal(parseFlags(["--version"]).version, true);
  const help = helpText("1.2.3");
  for (const name of FLAG_ENV_NAMES) {
    assert.match(help, new RegExp(`--${flagName(name)}=VALUE\\n\\s+${name}; \\S`), `--help explains ${name}`);
  }
});

Deno.test("config - the 7.3 defaults, and a retired variable is reported, not refused", () => {
  const c = parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_GRPC_DEADLINE_MS: "300" });
  assert.equal(c.setupTimeoutMs, 2000);
  assert.equal(c.maxCalls, 100_000);
  assert.equal(c.maxCallDurationS, 14_400);
  assert.equal(c.drainTimeoutS, 3600);
  assert.equal(c.sip.serverHeader, "sentiric-sip-signaling");
  assert.equal(c.logLevel, "info");
  assert.equal(
    c.sip.allowedSources.toString(),
    "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7",
  );
  assert.equal(c.httpListenAddress, c.sip.listenAddress);
  assert.deepEqual(c.retired, ["SIP_SIGNALING_SERVICE_GRPC_DEADLINE_MS"]);
  assert.throws(
    () => parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_ALLOWED_SOURCES: "10.0.0.0/40" }),
    /ALLOWED_SOURCES/,
  );
  assert.throws(() => parseConfig({ ...PROD, LOG_LEVEL: "loud" }), /LOG_LEVEL/);
  assert.throws(
    () => parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "5" }),
    /SETUP_TIMEOUT_MS/,
  );
});

Deno.test("config - SIP over TCP and TLS: limits, TLS only with certificate and key together", () => {
  const c = parseConfig(PROD);
  assert.deepEqual(c.sip.streams, {
    maxConnections: 10_000,
    maxConnectionsPerSource: 256,
    idleTimeoutS: 300,
    tls: undefined,
  });
  const tls = parseConfig({
    ...PROD,
    SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH: "/etc/sentiric/tls/sip.crt",
    SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH: "/etc/sentiric/tls/sip.key",
  });
  assert.deepEqual(tls.sip.streams.tls, {
    port: 5061,
    certPath: "/etc/sentiric/tls/sip.crt",
    keyPath: "/etc/sentiric/tls/sip.key",
    caPath: undefined,
  });
  assert.throws(
    () => parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_SIP_TLS_CERT_PATH: "/etc/sentiric/tls/sip.crt" }),
    /SIP_SIGNALING_SERVICE_SIP_TLS_KEY_PATH/,
  );
  assert.throws(
    () => parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH: "/etc/sentiric/tls/ca.crt" }),
    /SIP_SIGNALING_SERVICE_SIP_TLS_CA_PATH/,
  );
  assert.throws(
    () => parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_TCP_MAX_CONNECTIONS_PER_SOURCE: "0" }),
    /MAX_CONNECTIONS_PER_SOURCE/,
  );
});

Deno.test("config - RABBITMQ_URL may name a cluster's nodes; passwords stay out of the logged config", () => {
  const c = parseConfig({
    ...PROD,
    RABBITMQ_URL: "amqp://u:secret1@rabbit-a:5672, amqp://u:secret2@rabbit-b:5672",
  });
  assert.deepEqual(c.rabbitmqUrl, ["amqp://u:secret1@rabbit-a:5672", "amqp://u:secret2@rabbit-b:5672"]);
  const logged = JSON.stringify(effectiveConfig(c));
  assert.ok(!logged.includes("secret"), logged);
  assert.match(logged, /amqp:\/\/u:\*\*\*@rabbit-b:5672/);
  assert.throws(
    () => parseConfig({ ...PROD, RABBITMQ_URL: "amqp://u:secret@a:5672,http://u:pw@b" }),
    (e: Error) => /RABBITMQ_URL/.test(e.message) && !e.message.includes("pw"),
  );
});

Deno.test("config - both spellings are read and the later one wins", () => {
  const c = parseConfig({ ...PROD, SIP_SIGNALING_SERVICE_PORT: "5070", PUBLIC_IP: "198.51.100.1" });
  assert.equal(c.sip.port, 5070);
  assert.equal(c.sip.publicIp, "203.0.113.5", "SIP_SIGNALING_SERVICE_PUBLIC_IP beats PUBLIC_IP");
  const d = parseConfig({
    ...PROD,
    SIP_SIGNALING_SERVICE_PORT: "5070",
    SIP_SIGNALING_SERVICE_SIP_PORT: "5080",
  });
  assert.equal(d.sip.port, 5080);
  const e = parseConfig({
    ...PROD,
    DIALPLAN_SERVICE_TARGET_GRPC_URL: "",
    DIALPLAN_SERVICE_GRPC_URL: "old-dialplan:1",
  });
  assert.equal(e.grpc.dialplanUrl, "old-dialplan:1", "earlier spelling alone still works");
  assert.equal(c.grpc.port, 13021);
  assert.equal(c.httpPort, 13020);
  assert.equal(c.development, false);
});

Deno.test("config - a missing or bad value names its variable", () => {
  const named = (env: Record<string, string>, variable: string) =>
    assert.throws(
      () => parseConfig(env),
      (e: unknown) => e instanceof ConfigError && e.variable === variable,
    );
  named({ ...PROD, SIP_SIGNALING_SERVICE_PUBLIC_IP: "" }, "SIP_SIGNALING_SERVICE_PUBLIC_IP");
  named({ ...PROD, SIP_SIGNALING_SERVICE_SIP_PORT: "70000" }, "SIP_SIGNALING_SERVICE_SIP_PORT");
  named({ ...PROD, SIP_SIGNALING_SERVICE_PORT: "abc" }, "SIP_SIGNALING_SERVICE_PORT");
  named({ ...PROD, MEDIA_SERVICE_TARGET_GRPC_URL: "" }, "MEDIA_SERVICE_TARGET_GRPC_URL");
  named({ ...PROD, RABBITMQ_URL: "http://x" }, "RABBITMQ_URL");
  named({ ...PROD, SIP_SIGNALING_SERVICE_CERT_PATH: "/c.pem" }, "SIP_SIGNALING_SERVICE_KEY_PATH");
  named({ ...PROD, SIP_SIGNALING_SERVICE_MIN_SE: "30" }, "SIP_SIGNALING_SERVICE_MIN_SE");
  named(
    { ...PROD, SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE: "+90" },
    "SIP_SIGNALING_SERVICE_DEFAULT_COUNTRY_CODE",
  );
});

Deno.test("config - embedded mode needs nothing", () => {
  const c = parseConfig({}, { embedded: true });
  assert.equal(c.sip.publicIp, "127.0.0.1");
  assert.equal(c.grpc.dialplanUrl, undefined);
  assert.equal(c.rabbitmqUrl, undefined);
});

Deno.test("failure table - each failure maps to one SIP status", () => {
  const up = (service: "dialplan" | "media", code: grpc.status) =>
    failureResponse(new UpstreamError(service, code, "x"));
  assert.deepEqual(up("dialplan", grpc.status.NOT_FOUND), { status: 404, headers: [] });
  for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]) {
    assert.deepEqual(up("dialplan", code), { status: 503, headers: [{ name: "Retry-After", value: "30" }] });
  }
  assert.equal(up("media", grpc.status.INTERNAL).status, 503);
  assert.equal(failureResponse(new SdpNegotiationError("x")).status, 488);
  assert.equal(failureResponse(new PlanRejectedError("unspecified")).status, 480);
  assert.equal(failureResponse(new PlanRejectedError("anonymous")).status, 433);
  assert.equal(failureResponse(new PlanRejectedError("maintenance")).status, 503);
  assert.equal(failureResponse(new Error("bug")).status, 500);
});

Deno.test("numbers - normalised to E.164 digits with the configured country code", () => {
  assert.equal(normalizeNumber("05321234567", "90"), "905321234567");
  assert.equal(normalizeNumber("5321234567", "90"), "905321234567");
  assert.equal(normalizeNumber("+905321234567", "90"), "905321234567");
  assert.equal(normalizeNumber("00905321234567", "90"), "905321234567");
  assert.equal(normalizeNumber("905321234567", "90"), "905321234567");
  assert.equal(normalizeNumber("2125550100", "1"), "12125550100");
  assert.equal(normalizeNumber("%2B4930123456", "90"), "4930123456");
  assert.equal(normalizeNumber("anonymous", "90"), "anonymous");
});

Deno.test("secrets - passwords in URLs never reach a log line", () => {
  assert.equal(redactUrl("amqp://user:s3cret@rabbit:5672/vh"), "amqp://user:***@rabbit:5672/vh");
  assert.equal(
    redactSecrets('{"message":"cannot reach amqps://svc:p%40ss@mq.internal:5671"}'),
    '{"message":"cannot reach amqps://svc:***@mq.internal:5671"}',
  );
  assert.equal(redactSecrets("no secrets here"), "no secrets here");
});

Deno.test("logging - lines are written in batches, in order, none dropped, the rest on dispose", async () => {
  const writes: string[] = [];
  const out = {
    // Accepts at most 1000 bytes per call, as a pipe may: the sink must write the rest.
    writeSync(bytes: Uint8Array) {
      const n = Math.min(bytes.length, 1000);
      writes.push(new TextDecoder().decode(bytes.subarray(0, n)));
      return n;
    },
  };
  const sink = batchedLineSink((r) => `${r.message[0]}\n`, out, 10);
  const record = (i: number) => ({ message: [`line ${i}`] }) as unknown as LogRecord;
  for (let i = 0; i < 1000; i++) sink(record(i));
  assert.equal(writes.length, 0, "nothing written on the hot path");
  await new Promise((r) => setTimeout(r, 30));
  const lines = writes.join("").split("\n").filter((l) => l !== "");
  assert.deepEqual(lines, Array.from({ length: 1000 }, (_, i) => `line ${i}`));
  assert.ok(writes.length < 20, `one batch, split only by short writes (${writes.length} writes)`);
  sink(record(1000));
  sink[Symbol.dispose]();
  assert.equal(writes.at(-1), "line 1000\n", "dispose writes what is pending");
});

Deno.test("logging - a closed stdout loses the batch, never throws, and later lines are tried again", async () => {
  let broken = true;
  const written: string[] = [];
  const out = {
    writeSync(bytes: Uint8Array) {
      if (broken) throw new Deno.errors.BrokenPipe("stdout closed");
      written.push(new TextDecoder().decode(bytes));
      return bytes.length;
    },
  };
  const sink = batchedLineSink((r) => `${r.message[0]}`, out, 5);
  sink({ message: ["lost"] } as unknown as LogRecord);
  await new Promise((r) => setTimeout(r, 20)); // the flush runs in a timer: it must not throw there
  broken = false;
  sink({ message: ["kept"] } as unknown as LogRecord);
  sink[Symbol.dispose]();
  assert.deepEqual(written, ["kept\n"]);
});

Deno.test("config - every variable the service reads is allowed by the service permission set", async () => {
  const { CONFIG_ENV_NAMES } = await import("../orchestration/config.ts");
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const allowed: string[] = config.permissions.service.env;
  assert.deepEqual(CONFIG_ENV_NAMES.filter((n) => !allowed.includes(n)), []);
  assert.deepEqual(
    config.permissions.service.run,
    ["deno", "/usr/local/bin/sip-signaling"],
    "the service runs no program but itself (the TerminateCall process)",
  );
  assert.equal(config.permissions.service.write, undefined, "the service writes no file");
  assert.match(config.tasks.compile, /deploy\/compile\.ts/);
  assert.match(await Deno.readTextFile(new URL("../deploy/compile.ts", import.meta.url)), /"-P=service"/);
});
