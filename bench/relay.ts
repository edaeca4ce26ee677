// The hop every backend call now takes (orchestration/supervised_child.ts): a JSON line
// to the gRPC client process and one back, over loopback TCP. CPU of both processes per
// round trip, paced like 500 calls/s (1,500 calls a second), beside the same message as
// a UDP datagram echoed by the same child.
import { SupervisedChild } from "../orchestration/supervised_child.ts";
import { processCpuMs } from "./calls.ts";

const CALL = {
  t: "call",
  call: { method: "allocatePort", request: { callId: "3c26700857f1-7f5c@192.0.2.10" } },
  traceId: "0af7651916cd43dd8448eb211c80319c",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  deadline: 0,
};

async function paced(n: number, roundTrip: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i++) {
    await roundTrip(i);
    if (i % 15 === 14) await new Promise((r) => setTimeout(r, 10));
  }
}

export async function* relayBench(n = 10_000): AsyncGenerator<string> {
  const waiting = new Map<number, () => void>();
  const child = await SupervisedChild.start<unknown, { id: number }>({
    what: "echo",
    flag: "--bench-echo-child",
    module: new URL("./echo_child.ts", import.meta.url),
    config: { t: "config" },
    onMessage(message) {
      waiting.get(message.id)?.();
      waiting.delete(message.id);
    },
  });
  const childPid = child.pid as number;
  const relay = (id: number) =>
    new Promise<void>((resolve) => {
      waiting.set(id, resolve);
      child.send({ ...CALL, id });
    });
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const echo = { transport: "udp" as const, hostname: "127.0.0.1", port: Number(child.ready?.udpPort) };
  const bytes = new TextEncoder().encode(JSON.stringify({ ...CALL, id: 1 }));
  const buffer = new Uint8Array(65536);
  const datagram = async () => {
    await socket.send(bytes, echo);
    await socket.receive(buffer);
  };
  const measureBoth = async (run: () => Promise<void>) => {
    const before = [await processCpuMs(Deno.pid), await processCpuMs(childPid)];
    await run();
    return [
      (await processCpuMs(Deno.pid) - before[0]!) * 1000 / n,
      (await processCpuMs(childPid) - before[1]!) * 1000 / n,
    ];
  };
  await paced(2000, relay); // warm-up
  await paced(2000, datagram);
  const [relayParent, relayChild] = await measureBoth(() => paced(n, (i) => relay(10_000 + i)));
  const [udpParent, udpChild] = await measureBoth(() => paced(n, datagram));
  socket.close();
  await child.close();
  const total = relayParent! + relayChild!;
  const base = udpParent! + udpChild!;
  yield `relay: ${n} calls to a child process and back (${bytes.length} B JSON lines over loopback TCP), paced`;
  yield `  CPU per round trip ${total.toFixed(0)} µs (this process ${relayParent!.toFixed(0)}, the child ${
    relayChild!.toFixed(0)
  }); the same bytes as a UDP datagram echoed: ${base.toFixed(0)} µs; ratio ${(total / base).toFixed(1)}`;
}
