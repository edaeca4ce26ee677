// The platform's topology: a record-routing proxy (Kamailio) between the caller
// (SIPp) and the service. Our 200 must carry the Record-Route, the caller's ACK and
// BYE come back through the proxy, and our own BYE (TerminateCall) follows the route
// set through the proxy to the caller.
import assert from "node:assert/strict";
import { startReferenceServers } from "../orchestration/reference/servers.ts";
import {
  backendsEnv,
  EventConsumer,
  freeTcpPort,
  freeUdpPort,
  installSipTls,
  missingPeers,
  scenarioPath,
  serviceMetric,
  sipp,
  startService,
  terminateCall,
  waitFor,
} from "./e2e/harness.ts";
import { kamailioAvailable, runKamailio } from "./e2e/gateway.ts";

const skip = (await missingPeers()) !== undefined || !(await kamailioAvailable());

/** Kamailio in front of the service: UDP towards callers, `transport` towards the service. */
async function startKamailio(servicePort: number, transport: "udp" | "tcp" | "tls", fixtures = "") {
  const port = freeUdpPort();
  const tlsPort = freeTcpPort();
  const dir = await Deno.makeTempDir({ prefix: "kamailio-" });
  const template = await Deno.readTextFile(new URL("./kamailio/proxy.cfg", import.meta.url));
  const cfg = `${dir}/proxy.cfg`;
  const tlsCfg = `${dir}/tls.cfg`;
  await Deno.writeTextFile(
    cfg,
    template.replaceAll("__PROXY_PORT__", String(port))
      .replaceAll("__SERVICE_PORT__", String(servicePort))
      .replaceAll("__SERVICE_TRANSPORT__", transport)
      .replaceAll("__PROXY_TLS_PORT__", String(tlsPort))
      .replaceAll("__TLS_CFG__", tlsCfg),
  );
  const tlsTemplate = await Deno.readTextFile(new URL("./kamailio/tls.cfg", import.meta.url));
  await Deno.writeTextFile(tlsCfg, tlsTemplate.replaceAll("__FIXTURES__", fixtures.replace(/\/$/, "")));
  const kamailio = await runKamailio(cfg, dir, transport === "tls" ? ["WITH_TLS"] : []);
  return { ...kamailio, port };
}

for (const transport of ["udp", "tcp", "tls"] as const) {
  Deno.test({
    name: `e2e - through a Kamailio proxy, ${transport} to the service: Record-Route honoured both ways`,
    ignore: skip,
    sanitizeOps: false,
    sanitizeResources: false,
  }, async (t) => {
    await using backends = await startReferenceServers();
    await using consumer = await EventConsumer.start();
    await using tls = await installSipTls();
    await using service = await startService({
      ...backendsEnv(backends),
      ...(transport === "tls" ? tls.env : {}),
    });
    const proxy = await startKamailio(
      transport === "tls" ? tls.port : service.sipPort,
      transport,
      tls.fixtures,
    );
    try {
      await t.step("caller hangs up: ACK and BYE travel back through the proxy", async () => {
        const before = consumer.events.length;
        const r = await sipp(scenarioPath("uac_call.xml"), proxy.port, [
          "-s",
          "905551112233",
          "-d",
          "200",
          "-trace_msg",
        ]);
        assert.equal(r.code, 0, `${r.stdout}\n${proxy.log.join("").slice(-2000)}`);
        const ok = r.messages.split(/\n-{10,}/).find((m) =>
          /\nSIP\/2\.0 200 OK/.test(m) && /CSeq: 1 INVITE/.test(m)
        ) ?? "";
        assert.match(
          ok,
          new RegExp(`Record-Route:[^\\n]*<sip:127\\.0\\.0\\.1:${proxy.port}[;>]`),
          "our 200 carries the proxy's Record-Route",
        );
        if (transport !== "udp") {
          const accepted = await serviceMetric(
            service.httpPort,
            `sip_signaling_sip_connections_accepted_total{transport="${transport.toUpperCase()}"}`,
          );
          assert.ok(accepted >= 1, `the proxy reached the service over ${transport}`);
        }
        assert.match(
          r.messages,
          new RegExp(`\nBYE [^\n]*\n[^]*?Route: [^\n]*<sip:127\\.0\\.0\\.1:${proxy.port}[;>]`),
          "the caller's BYE is routed via the proxy",
        );
        const ended = await waitFor(() =>
          consumer.events.slice(before).find((e) =>
            e.routingKey === "call.ended"
          )
        );
        assert.equal(ended?.body.reason, "normal_clearing");
        assert.deepEqual(consumer.events.slice(before).map((e) => e.routingKey), [
          "call.started",
          "call.answered",
          "call.ended",
        ]);
      });

      await t.step(
        "TerminateCall: our BYE follows the route set through the proxy to the caller",
        async () => {
          const before = consumer.events.length;
          const caller = sipp(scenarioPath("uac_wait_bye.xml"), proxy.port, [
            "-s",
            "905551112233",
            "-trace_msg",
          ]);
          const answered = await waitFor(() =>
            consumer.events.slice(before).find((e) => e.routingKey === "call.answered")
          );
          assert.ok(answered, "call answered through the proxy");
          const r = await terminateCall(service.grpcPort, String(answered.body.callId), "completed_by_agent");
          assert.equal(r.success, true);
          const result = await caller;
          assert.equal(result.code, 0, `the caller got our BYE: ${result.stdout}`);
          const bye = result.messages.split(/\n-{10,}/).find((m) => /received[^\n]*\n\s*BYE /.test(m)) ?? "";
          const vias = [...bye.matchAll(/\nVia: ([^\n]*)/g)].map((m) => m[1] ?? "");
          assert.equal(vias.length, 2, `our BYE crossed the proxy (its Via on top): ${bye}`);
          assert.match(vias[0] ?? "", new RegExp(`127\\.0\\.0\\.1:${proxy.port}`));
          // ReleasePort follows the call's end; it may still be on its way.
          assert.equal(await waitFor(() => backends.ports.allocated.size === 0), true, "port released");
        },
      );
    } finally {
      await proxy.stop();
    }
  });
}
