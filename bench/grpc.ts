// What one gRPC unary call costs here, next to a UDP datagram, in CPU time of the
// whole process: the reference media service in a Worker (as in embedded mode), our
// grpc-js client on the main thread.
// A call setup makes four such calls (ResolveDialplan, the dialplan's own
// FindUserByContact, AllocatePort, ReleasePort), both ends in this process's CPU.
import process from "node:process";
import { startReferenceServersInWorker } from "../orchestration/reference/worker.ts";
import { Upstreams } from "../orchestration/grpc.ts";

/** CPU time of this whole process (all threads: ours, the Worker's, V8's), µs. */
function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Process CPU per operation, µs, over `n` operations run `concurrency` at a time. */
async function measure(n: number, concurrency: number, one: () => Promise<unknown>): Promise<number> {
  const before = cpuUs();
  let started = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started++ < n) await one();
  }));
  return (cpuUs() - before) / n;
}

async function udpDatagram(n: number) {
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const bytes = new Uint8Array(900); // about an INVITE
  const buffer = new Uint8Array(65507);
  const to = b.addr as Deno.NetAddr;
  try {
    return await measure(n, 1, async () => {
      await a.send(bytes, to);
      await b.receive(buffer);
    });
  } finally {
    a.close();
    b.close();
  }
}

export async function* grpcBench(): AsyncGenerator<string> {
  const backends = await startReferenceServersInWorker();
  const upstreams = new Upstreams({
    dialplanUrl: backends.dialplanUrl,
    mediaUrl: backends.mediaUrl,
    deadlineMs: 5000,
  });
  try {
    const unary = () => upstreams.releasePort(10000, "bench");
    await measure(2000, 10, unary); // warm-up: JIT, connection
    await udpDatagram(5000);
    const rows: { grpc: number; udp: number }[] = [];
    for (let round = 0; round < 3; round++) {
      rows.push({ grpc: await measure(6000, 10, unary), udp: await udpDatagram(20000) });
    }
    yield "grpc: unary ReleasePort over loopback, grpc-js client on this thread, reference server in a Worker";
    for (const { grpc, udp } of rows) {
      yield `  gRPC unary call (client and server): ${grpc.toFixed(0)} µs CPU; ` +
        `UDP datagram sent and received: ${udp.toFixed(1)} µs CPU; ratio ${(grpc / udp).toFixed(1)}`;
    }
    const median = rows.map((r) => r.grpc).sort((x, y) => x - y)[1] as number;
    // The service makes three per call (ResolveDialplan, AllocatePort, ReleasePort); the
    // dialplan service's FindUserByContact is its own.
    yield `  per call (3 unary calls from the service, both ends): about ${
      (3 * median / 1000).toFixed(2)
    } ms CPU for gRPC alone`;
  } finally {
    upstreams.close();
    await backends.close();
  }
}
