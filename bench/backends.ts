// The reference dialplan, user and media services as a process of their own, as in
// production: the full-call bench points the service at them over gRPC, so that the
// backends' side of each call is not charged to the service.
//   deno run -P=bench bench/backends.ts   # prints "ready {dialplanUrl, mediaUrl, userUrl}"
// deno-lint-ignore-file no-console
import { startReferenceServers } from "../orchestration/reference_servers.ts";

const servers = await startReferenceServers();
console.log(
  `ready ${
    JSON.stringify({ dialplanUrl: servers.dialplanUrl, mediaUrl: servers.mediaUrl, userUrl: servers.userUrl })
  }`,
);
await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
await servers.close();
Deno.exit(0);
