// The SIP core against a real peer: SIPp sends OPTIONS, then the test sends one
// request twice (a retransmission), over IPv4 and IPv6, to the running service
// (embedded backends, -P=service).
import assert from "node:assert/strict";
import { e2eTest, missingPeers, scenarioPath, sipp, startService } from "./e2e/harness.ts";

const skip = await missingPeers();

for (const host of ["127.0.0.1", "::1"]) {
  e2eTest(
    `e2e - SIPp OPTIONS, and a retransmission answered by its transaction, over ${
      host.includes(":") ? "IPv6" : "IPv4"
    }`,
    skip,
    async () => {
      await using service = await startService({
        SIP_SIGNALING_SERVICE_LISTEN_ADDRESS: host,
        SIP_SIGNALING_SERVICE_PUBLIC_IP: host,
      }, ["--embedded"]);
      const r = await sipp(scenarioPath("uac_options.xml"), service.sipPort, ["-s", "905551112233"], host);
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.log, /first tag=[0-9a-f]{16} /, "200 with a To-tag, Allow, Accept, Supported");

      // A retransmission: the same datagram twice. The transaction absorbs the second
      // and re-sends the same 200 (RFC 3261 17.2.2); the request is handled once.
      const socket = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
      try {
        const local = socket.addr as Deno.NetAddr;
        const sentBy = host.includes(":")
          ? `[${local.hostname}]:${local.port}`
          : `${local.hostname}:${local.port}`;
        const options = new TextEncoder().encode([
          `OPTIONS sip:905551112233@${host.includes(":") ? `[${host}]` : host}:${service.sipPort} SIP/2.0`,
          `Via: SIP/2.0/UDP ${sentBy};branch=z9hG4bK-retx-${crypto.randomUUID()};rport`,
          "Max-Forwards: 70",
          `From: <sip:probe@${sentBy}>;tag=retx`,
          `To: <sip:905551112233@${sentBy}>`,
          `Call-ID: retx-${crypto.randomUUID()}`,
          "CSeq: 1 OPTIONS",
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n"));
        const target = { transport: "udp" as const, hostname: host, port: service.sipPort };
        await socket.send(options, target);
        const [first] = await socket.receive();
        const firstText = new TextDecoder().decode(first);
        assert.match(firstText, /^SIP\/2\.0 200 /);
        await socket.send(options, target);
        const [again] = await socket.receive();
        assert.equal(new TextDecoder().decode(again), firstText, "the same 200 again, To-tag included");
      } finally {
        socket.close();
      }
      const metrics = await (await fetch(
        `http://${host.includes(":") ? `[${host}]` : host}:${service.httpPort}/metrics`,
      )).text();
      assert.match(metrics, /sip_signaling_sip_requests_received_total 3\n/);
      assert.match(
        metrics,
        /sip_signaling_sip_request_retransmissions_total 1\n/,
        "absorbed, not handled twice",
      );
    },
  );
}
