/**
 * The child process that makes the calls to the backends (dialplan, media) with
 * grpc-js, for `upstreams_process.ts`: a backend that sends GOAWAY (a restart, a deploy,
 * a max-connection-age) can crash Deno's `node:http2` client (denoland/deno#36788), and
 * only this process may die of it. It connects back to its parent, reads one JSON line of configuration,
 * says `ready` with its channels' states, then answers each `call` line with a `done`
 * line and reports every channel state change. SIGTERM and SIGINT are the parent's to
 * act on; the child ends when its connection to the parent closes.
 */
import { Buffer } from "node:buffer";
import { ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import { type ChannelState, type RelayedCall, Upstreams } from "./grpc.ts";
import { connectToParent } from "./supervised_child.ts";

/** The internal flag the compiled binary runs its gRPC client process with. */
export const UPSTREAMS_CHILD_FLAG = "--grpc-client-child";

export type ChannelStates = Readonly<Record<"dialplan" | "media", ChannelState>>;

/** Lines the parent writes: first `config`, then calls and connect requests. */
export type UpstreamsParentMessage =
  | {
    t: "config";
    dialplanUrl: string;
    mediaUrl: string;
    deadlineMs: number;
    tls?: { cert: string; key: string; ca: string };
  }
  | { t: "call"; id: number; call: RelayedCall; traceId: string; traceparent: string; deadline: number }
  /** A readiness probe: idle channels should connect. */
  | { t: "connect" };

/** Lines the child writes after `{"t":"ready","states"}`. */
export type UpstreamsChildMessage =
  | { t: "done"; id: number; error?: { code: number; details: string }; response?: unknown }
  | { t: "states"; states: ChannelStates };

/** A response as a JSON line carries it (the dialplan's in the proto3 JSON mapping). */
export function encodeResponse(method: RelayedCall["method"], response: unknown): unknown {
  return method === "resolveDialplan"
    ? ResolveDialplanResponse.toJSON(response as ResolveDialplanResponse)
    : response;
}

export async function runUpstreamsChild(): Promise<void> {
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, () => {});
  const { messages, out } = await connectToParent<UpstreamsParentMessage>();
  let upstreams: Upstreams | undefined;
  for await (const message of messages) {
    if (message.t === "config") {
      const tls = message.tls;
      upstreams = new Upstreams({
        dialplanUrl: message.dialplanUrl,
        mediaUrl: message.mediaUrl,
        deadlineMs: message.deadlineMs,
        tls: tls === undefined ? undefined : {
          cert: Buffer.from(tls.cert, "base64"),
          key: Buffer.from(tls.key, "base64"),
          ca: Buffer.from(tls.ca, "base64"),
        },
      });
      out.send({ t: "ready", states: upstreams.channelStates(true) });
      upstreams.watchChannels((states) => out.send({ t: "states", states } satisfies UpstreamsChildMessage));
    } else if (message.t === "call" && upstreams !== undefined) {
      const { id, call } = message;
      upstreams.relay(
        call,
        message.traceId,
        message.traceparent,
        message.deadline,
        (error, response) =>
          out.send(
            (error === null
              ? { t: "done", id, response: encodeResponse(call.method, response) }
              : { t: "done", id, error }) satisfies UpstreamsChildMessage,
          ),
      );
    } else if (message.t === "connect") upstreams?.channelStates(true);
  }
  // The parent is gone (or closed the pipe to stop us). The channels are left to the
  // exit: closing them exchanges the GOAWAY frames this process exists to survive.
  Deno.exit(0);
}

if (import.meta.main) await runUpstreamsChild();
