// The child process of bench/relay.ts: answers each relayed call at once over the
// supervised-child link, and echoes UDP datagrams on a port it reports when ready.
import { connectToParent } from "../orchestration/supervised_child.ts";

const { messages, out } = await connectToParent<{ t: string; id?: number }>();
const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
(async () => {
  const buffer = new Uint8Array(65536);
  for (;;) {
    const [view, from] = await socket.receive(buffer);
    await socket.send(view, from);
  }
})();
for await (const message of messages) {
  if (message.t === "config") out.send({ t: "ready", udpPort: (socket.addr as Deno.NetAddr).port });
  else out.send({ t: "done", id: message.id, response: { rtpPort: 10000 } });
}
Deno.exit(0);
