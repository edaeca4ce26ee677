/**
 * The embedded reference backends on their own thread: a Worker running
 * `startReferenceServers`, so the signaling event loop does not also serve the
 * dialplan, user and media gRPC calls it makes (as in production, where they are
 * other services). Still in-process and still real gRPC over loopback.
 */
import { startReferenceServers } from "./servers.ts";

export interface WorkerBackends extends AsyncDisposable {
  readonly dialplanUrl: string;
  readonly userUrl: string;
  readonly mediaUrl: string;
  close(): Promise<void>;
}

interface Ready {
  readonly dialplanUrl: string;
  readonly userUrl: string;
  readonly mediaUrl: string;
}

/** Starts the reference backends in a Worker and waits for their addresses. */
export function startReferenceServersInWorker(): Promise<WorkerBackends> {
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`reference backends worker failed: ${e.message}`));
    };
    worker.onmessage = (event: MessageEvent<Ready | "closed">) => {
      if (event.data === "closed") return;
      const { dialplanUrl, userUrl, mediaUrl } = event.data;
      let closed = false;
      const close = () => {
        if (closed) return Promise.resolve();
        closed = true;
        return new Promise<void>((done) => {
          const timer = setTimeout(() => {
            worker.terminate();
            done();
          }, 2000);
          worker.onmessage = (e: MessageEvent<Ready | "closed">) => {
            if (e.data !== "closed") return;
            clearTimeout(timer);
            worker.terminate();
            done();
          };
          worker.postMessage("close");
        });
      };
      resolve({ dialplanUrl, userUrl, mediaUrl, close, [Symbol.asyncDispose]: close });
    };
  });
}

// Inside the worker: start the servers, report their addresses, close on request.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  const servers = await startReferenceServers();
  scope.onmessage = async (event: MessageEvent<string>) => {
    if (event.data !== "close") return;
    await servers.close();
    scope.postMessage("closed");
  };
  scope.postMessage({
    dialplanUrl: servers.dialplanUrl,
    userUrl: servers.userUrl,
    mediaUrl: servers.mediaUrl,
  });
}
