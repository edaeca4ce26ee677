// Operable on day one (CONTRACTS.md 7.4), end to end with SIPp, the real broker and
// reference backends: every metric family after real calls (checked by promtool, a
// real Prometheus parser), readiness with a backend down and with the broker refusing
// our credentials, and one trace id from the gateway's header to the backends, the
// events and the log lines.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  e2eTest,
  EventConsumer,
  freeTcpPort,
  missingPeers,
  probeOptions,
  RABBITMQ_URL,
  scenarioFrom,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  waitFor,
} from "./e2e/harness.ts";

const skip = await missingPeers();

async function promtool(args: string[], input: string): Promise<{ code: number; out: string }> {
  const child = new Deno.Command("promtool", { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  return { code: out.code, out: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) };
}

e2eTest("e2e ops - every 7.4 metric family after real calls, parsed by promtool", skip, async () => {
  await using backends = await startReferenceServers();
  await using consumer = await EventConsumer.start();
  await using service = await startService(backendsEnv(backends));
  const ok = await sipp(scenarioPath("uac_call.xml"), service.sipPort, [
    "-s",
    "905551112233",
    "-m",
    "3",
    "-d",
    "10",
  ]);
  assert.equal(ok.code, 0, ok.stdout);
  const notFound = await scenarioFrom("uac_reject.xml", {
    STATUS: "404",
    FROM: "905321234567",
    CODECS: "0 8",
    SE: "1800",
  });
  assert.equal((await sipp(notFound, service.sipPort, ["-s", "905559999999"])).code, 0);
  await Deno.remove(notFound);
  await waitFor(() => consumer.events.filter((e) => e.routingKey === "call.ended").length >= 3);
  await waitFor(async () => (await serviceMetric(service.httpPort, "sip_signaling_events_pending")) === 0);
  const released =
    'sip_signaling_grpc_client_duration_seconds_count{service="media",method="ReleasePort",code="OK"}';
  await waitFor(async () => (await serviceMetric(service.httpPort, released)) === 3);

  const text = await (await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).text();
  const check = await promtool(["check", "metrics"], text);
  // promtool's lint may remark on the runtime's default metrics' naming; it must parse.
  assert.doesNotMatch(check.out, /error while linting|parse error|text format parsing error/i, check.out);

  const family = (name: string, type: string) =>
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `${name} is a ${type}`);
  family("sip_signaling_invites_total", "counter");
  assert.match(text, /^sip_signaling_invites_total\{status="200"\} 3$/m);
  assert.match(text, /^sip_signaling_invites_total\{status="404"\} 1$/m);
  family("sip_signaling_calls_ended_total", "counter");
  assert.match(text, /^sip_signaling_calls_ended_total\{reason="normal_clearing"\} 3$/m);
  family("sip_signaling_setup_duration_seconds", "histogram");
  assert.match(text, /^sip_signaling_setup_duration_seconds_count 4$/m);
  family("sip_signaling_grpc_client_duration_seconds", "histogram");
  assert.match(
    text,
    /^sip_signaling_grpc_client_duration_seconds_count\{service="dialplan",method="ResolveDialplan",code="OK"\} 3$/m,
  );
  assert.match(
    text,
    /^sip_signaling_grpc_client_duration_seconds_count\{service="dialplan",method="ResolveDialplan",code="NOT_FOUND"\} 1$/m,
  );
  assert.match(
    text,
    /^sip_signaling_grpc_client_duration_seconds_count\{service="media",method="AllocatePort",code="OK"\} 3$/m,
  );
  assert.match(
    text,
    /^sip_signaling_grpc_client_duration_seconds_count\{service="media",method="ReleasePort",code="OK"\} 3$/m,
  );
  family("sip_signaling_events_published_total", "counter");
  for (const type of ["call.started", "call.answered", "call.ended"]) {
    assert.match(text, new RegExp(`^sip_signaling_events_published_total\\{type="${type}"\\} 3$`, "m"));
  }
  family("sip_signaling_events_pending", "gauge");
  family("sip_signaling_broker_connected", "gauge");
  assert.match(text, /^sip_signaling_broker_connected 1$/m);
  family("sip_signaling_active_calls", "gauge");
  assert.match(text, /^sip_signaling_active_calls 0$/m);
  family("sip_signaling_calls_in_setup", "gauge");
  family("sip_signaling_datagrams_dropped_total", "counter");
  assert.match(text, /^sip_signaling_datagrams_dropped_total\{reason="not_allowed"\} 0$/m);
  family("sip_signaling_build_info", "gauge");
  assert.match(text, /^sip_signaling_build_info\{version="\d+\.\d+\.\d+"\} 1$/m);
  // The runtime's defaults, and what this service adds.
  family("process_cpu_seconds_total", "counter");
  family("process_resident_memory_bytes", "gauge");
  assert.ok(Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1]) > 10_000_000, "a real RSS");
  family("nodejs_eventloop_lag_seconds", "gauge");
  family("sip_signaling_retransmissions_sent_total", "counter");
  assert.match(text, /^sip_signaling_backend_channel_state\{service="dialplan",state="READY"\} 1$/m);
  assert.match(text, /^sip_signaling_ready 1$/m);
});

e2eTest(
  "e2e ops - a backend down: /readyz 503 naming it, OPTIONS 503, INVITE 503 + Retry-After at once",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using service = await startService({
      ...backendsEnv(backends),
      DIALPLAN_SERVICE_TARGET_GRPC_URL: `127.0.0.1:${freeTcpPort()}`, // nothing listens
      SIP_SIGNALING_SERVICE_SETUP_TIMEOUT_MS: "1000", // the channel's grace
    });
    const report = await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${service.httpPort}/readyz`);
      const body = await r.json() as {
        status: string;
        checks: Record<string, { ok: boolean; state: string }>;
      };
      return r.status === 503 ? body : undefined;
    }, 10_000);
    assert.ok(report !== undefined, "not ready once the channel has failed past its grace");
    assert.equal(report.checks.dialplan?.ok, false);
    assert.match(report.checks.dialplan?.state ?? "", /^(TRANSIENT_FAILURE|IDLE|CONNECTING)$/, "never READY");
    assert.equal(report.checks.media?.ok, true);
    assert.equal(report.checks.broker?.ok, true);
    await waitFor(async () => (await serviceMetric(service.httpPort, "sip_signaling_ready")) === 0, 3000);
    assert.equal(
      await probeOptions(service.sipPort),
      503,
      "OPTIONS 503: the dispatcher takes the instance out",
    );
    const started = performance.now();
    const r = await sipp(scenarioPath("uac_call.xml"), service.sipPort, ["-s", "905551112233", "-trace_msg"]);
    assert.match(r.messages, /SIP\/2\.0 503[^\n]*\n(?:[^\n]*\n)*?Retry-After: \d+/);
    assert.ok(performance.now() - started < 1000, "at once, not after the setup budget");
    assert.equal(backends.traceIds.filter((t) => t.method === "AllocatePort").length, 0, "no backend asked");
  },
);

e2eTest(
  "e2e ops - a broker refusing our credentials: error logged at once, broker_connected 0, not ready",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    const wrong = RABBITMQ_URL.replace(/:\/\/([^:]+):[^@]*@/, "://$1:not-the-password@");
    await using service = await startService({ ...backendsEnv(backends), RABBITMQ_URL: wrong });
    const refused = service.logs.find((r) =>
      r.level === "ERROR" && String(r.message).includes("refused our credentials")
    );
    assert.ok(refused, `an error line at start: ${JSON.stringify(service.logs.slice(0, 6))}`);
    assert.doesNotMatch(JSON.stringify(service.logs), /not-the-password/, "the password never reaches a log");
    assert.equal(await serviceMetric(service.httpPort, "sip_signaling_broker_connected"), 0);
    const r = await fetch(`http://127.0.0.1:${service.httpPort}/readyz`);
    const body = await r.json() as { checks: Record<string, { ok: boolean; state: string }> };
    assert.equal(r.status, 503);
    assert.deepEqual(body.checks.broker, { ok: false, state: "access_refused" }, "at once, no grace");
    assert.equal(await probeOptions(service.sipPort), 503);
  },
);

e2eTest(
  "e2e ops - the gateway's X-Trace-Id (else traceparent) is the call's trace id everywhere",
  skip,
  async () => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using service = await startService(backendsEnv(backends));
    const given = "gw-7f3a9c-0001";
    const parent = "4bf92f3577b34da6a3ce929d0e0e4736";
    const cases: [string, string][] = [
      [`X-Trace-Id: ${given}`, given],
      [`traceparent: 00-${parent}-00f067aa0ba902b7-01`, parent],
    ];
    for (const [header, traceId] of cases) {
      const scenario = await scenarioFrom("uac_call_headers.xml", { HEADERS: header });
      const r = await sipp(scenario, service.sipPort, ["-s", "905551112233", "-d", "10"]);
      await Deno.remove(scenario);
      assert.equal(r.code, 0, r.stdout);
      const events = await waitFor(() => {
        const mine = consumer.events.filter((e) => e.body.traceId === traceId);
        return mine.length >= 3 ? mine : undefined;
      });
      assert.deepEqual(events?.map((e) => e.routingKey).sort(), [
        "call.answered",
        "call.ended",
        "call.started",
      ]);
      // ReleasePort goes out with call.ended, through the gRPC client process: it may land after.
      const traced = () => backends.traceIds.filter((t) => t.traceId === traceId).map((t) => t.method);
      await waitFor(() => traced().includes("ReleasePort"), 3000);
      const calls = traced().sort();
      assert.deepEqual(
        calls,
        ["AllocatePort", "FindUserByContact", "ReleasePort", "ResolveDialplan"],
        `${header}`,
      );
      for (
        const t of backends.traceIds.filter((t) => t.traceId === traceId && t.method !== "FindUserByContact")
      ) {
        assert.match(
          t.traceparent,
          /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
          "a W3C traceparent on each gRPC call",
        );
      }
      const mine = () =>
        service.logs.filter((l) =>
          (l.properties as Record<string, unknown> | undefined)?.traceId === traceId
        );
      // Log lines are written in batches at most 50 ms late: they may trail the events.
      const lines = await waitFor(() => {
        const found = mine();
        return found.some((l) => String(l.message).includes("answered")) ? found : undefined;
      });
      assert.ok(lines !== undefined, "the call's log lines carry it");
      assert.doesNotMatch(JSON.stringify(lines), /905551112233|905321234567/, "no full phone number at info");
    }
    const parented = backends.traceIds.find((t) => t.traceId === parent && t.method === "ResolveDialplan");
    assert.equal(parented?.traceparent.split("-")[1], parent, "the gateway's trace continues in ours");
  },
);

e2eTest(
  "e2e ops - with OTEL_DENO=true one call is one trace: setup span, gRPC calls and publish as children",
  skip,
  async () => {
    // A tiny OTLP/HTTP (JSON) collector.
    const spans: { name: string; traceId: string; spanId: string; parentSpanId?: string }[] = [];
    const collector = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
      if (new URL(request.url).pathname === "/v1/traces") {
        const body = await request.json() as {
          resourceSpans?: { scopeSpans?: { spans?: typeof spans }[] }[];
        };
        for (const rs of body.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
        }
      } else await request.body?.cancel();
      return new Response("{}", { headers: { "content-type": "application/json" } });
    });
    try {
      await using backends = await startReferenceServers();
      await using service = await startService({
        ...backendsEnv(backends),
        OTEL_DENO: "true",
        OTEL_DENO_CONSOLE: "ignore",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
        OTEL_SERVICE_NAME: "sip-signaling-test",
      });
      const parent = "0af7651916cd43dd8448eb211c80319c";
      const scenario = await scenarioFrom("uac_call_headers.xml", {
        HEADERS: `traceparent: 00-${parent}-b7ad6b7169203331-01`,
      });
      const r = await sipp(scenario, service.sipPort, ["-s", "905551112233", "-d", "10"]);
      await Deno.remove(scenario);
      assert.equal(r.code, 0, r.stdout);
      const setup = await waitFor(
        () => spans.find((s) => s.name === "sip.call.setup" && s.traceId === parent),
        15_000,
      );
      assert.ok(setup, `the setup span, in the gateway's trace: ${JSON.stringify(spans.map((s) => s.name))}`);
      assert.equal(setup.parentSpanId, "b7ad6b7169203331", "child of the gateway's span");
      const children = await waitFor(() => {
        const mine = spans.filter((s) => s.parentSpanId === setup.spanId).map((s) => s.name).sort();
        return mine.length >= 3 ? mine : undefined;
      }, 10_000);
      // Deno's own node:http2 spans (POST) may sit beside or below ours.
      for (const name of ["dialplan/ResolveDialplan", "media/AllocatePort", "publish call.started"]) {
        assert.ok(
          children?.includes(name),
          `${name} is a child of the setup span: ${JSON.stringify(children)}`,
        );
      }
      // The backend's parent is our RPC span, or the runtime's HTTP/2 span beneath it
      // (Deno injects the traceparent of its own node:http2 span when OTEL_DENO is on).
      const dialplanCall = backends.traceIds.find((t) =>
        t.traceId === parent && t.method === "ResolveDialplan"
      );
      const rpc = spans.find((s) => s.name === "dialplan/ResolveDialplan" && s.traceId === parent);
      const seen = dialplanCall?.traceparent.split("-");
      assert.equal(seen?.[1], parent, "the backend continues the same trace");
      const backendParent = await waitFor(() => spans.find((s) => s.spanId === seen?.[2]), 5000);
      assert.ok(
        seen?.[2] === rpc?.spanId || backendParent?.parentSpanId === rpc?.spanId,
        `the backend's parent span is our RPC span or its child: ${
          JSON.stringify({ seen, rpc, backendParent })
        }`,
      );
    } finally {
      await collector.shutdown();
    }
  },
);
