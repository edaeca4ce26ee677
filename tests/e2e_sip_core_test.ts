// The SIP core against a real peer: SIPp sends OPTIONS and a retransmission of it,
// over IPv4 and IPv6, to the running service (embedded backends, -P=service).
import assert from "node:assert/strict";
import { e2eTest, missingPeers, scenarioPath, sipp, startService } from "./e2e/harness.ts";

const skip = await missingPeers();

for (const host of ["127.0.0.1", "::1"]) {
  e2eTest(
    `e2e - SIPp OPTIONS and a retransmission over ${host.includes(":") ? "IPv6" : "IPv4"}`,
    skip,
    async () => {
      await using service = await startService({
        SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: host,
        SIP_SIGNALING_SERVICE_PUBLIC_IP: host,
      }, ["--embedded"]);
      const r = await sipp(
        scenarioPath("uac_options_retransmit.xml"),
        service.sipPort,
        ["-s", "905551112233"],
        host,
      );
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.log, /first tag=[0-9a-f]{16} /, "200 with a To-tag, Allow, Accept, Supported");
      assert.match(r.stdout, /200 <-+\s+1\s+1\s/, "one 200, and one re-send of it for the retransmission");
      const metrics = await (await fetch(
        `http://${host.includes(":") ? `[${host}]` : host}:${service.httpPort}/metrics`,
      )).text();
      assert.match(metrics, /sip_signaling_sip_requests_received_total 2\n/);
      assert.match(
        metrics,
        /sip_signaling_sip_request_retransmissions_total 1\n/,
        "absorbed, not handled twice",
      );
    },
  );
}
