// The reference dialplan, user and media services as a process of their own, as in
// production: the full-call bench points the service at them over gRPC, so that the
// backends' side of each call is not charged to the service.
//   deno run -P=bench bench/backends.ts   # prints "ready {dialplanUrl, mediaUrl, userUrl}"
// deno-lint-ignore-file no-console
import { PortPool, startReferenceServers } from "../orchestration/reference/servers.ts";

/**
 * RTP ports handed out in turn, each to any number of calls: one media server has
 * 25,000 even ports, and the dialog bench holds 100,000 calls up (production spreads
 * them over several media servers). Only the service's side is measured.
 */
class SharedPortPool extends PortPool {
  #next = 0;
  override allocate(callId: string): number {
    const port = 10000 + 2 * (this.#next++ % 25000);
    this.allocated.set(port, callId);
    return port;
  }
  override release(port: number): boolean {
    this.allocated.delete(port);
    return true;
  }
}

const servers = await startReferenceServers("127.0.0.1", new SharedPortPool());
console.log(
  `ready ${
    JSON.stringify({ dialplanUrl: servers.dialplanUrl, mediaUrl: servers.mediaUrl, userUrl: servers.userUrl })
  }`,
);
await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
await servers.close();
Deno.exit(0);
