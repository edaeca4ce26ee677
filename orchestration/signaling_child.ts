/**
 * The child process that serves TerminateCall and TransferCall (see `signaling_server.ts` for why it is a
 * process of its own). It connects back to its parent (`connectToParent`), reads one
 * JSON line of configuration, binds, says `ready`, then relays every call to its parent
 * as a JSON line and answers with the parent's reply. SIGTERM and SIGINT are the parent's to act on
 * (the agent may still end calls during a drain); the child ends when its connection to the parent closes.
 */
import { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";
import { serverCredentials } from "./grpc.ts";
import { startSignalingServer } from "./signaling_server.ts";
import { connectToParent } from "./supervised_child.ts";

/** Lines the child writes after `{"t":"ready","port"}` (or `{"t":"error","message"}`). */
export type ChildMessage =
  | { t: "call"; id: number; callId: string; reason: string }
  | { t: "transfer"; id: number; callId: string; targetUri: string; reason: string };

/** Lines the parent writes: first `config`, then one `answer` per call. */
export type ParentMessage =
  | { t: "config"; address: string; tls?: { cert: string; key: string; ca: string } }
  | { t: "answer"; id: number; success: boolean; message: string; sipStatus?: number };

type Answer = { success: boolean; message: string; sipStatus: number };

/** How long a relayed TerminateCall waits for the service's answer. */
const ANSWER_TIMEOUT_MS = 5000;
/** TransferCall answers on the REFER's final response: up to Timer F (32 s) and a margin. */
const TRANSFER_TIMEOUT_MS = 40_000;

export async function runSignalingChild(): Promise<void> {
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, () => {});
  const { messages, out } = await connectToParent<ParentMessage>();
  const say = (message: ChildMessage | { t: "ready"; port: number } | { t: "error"; message: string }) =>
    out.send(message);
  const pending = new Map<number, (answer: Answer) => void>();
  let nextId = 1;
  let server: grpc.Server | undefined;
  /** Sends one relayed call to the parent and waits for its answer. */
  const relay = (call: ChildMessage, timeoutMs: number) =>
    new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(call.id);
        reject(new Error("the signaling service did not answer"));
      }, timeoutMs);
      pending.set(call.id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      say(call);
    });

  for await (const message of messages) {
    if (message.t === "config") {
      const tls = message.tls;
      const credentials = serverCredentials(
        tls === undefined ? undefined : {
          cert: Buffer.from(tls.cert, "base64"),
          key: Buffer.from(tls.key, "base64"),
          ca: Buffer.from(tls.ca, "base64"),
        },
      );
      try {
        const started = await startSignalingServer(
          {
            terminate: (callId, reason) =>
              relay({ t: "call", id: nextId++, callId, reason }, ANSWER_TIMEOUT_MS)
                .then(({ success, message }) => ({ success, message })),
            transfer: (callId, targetUri, reason) =>
              relay({ t: "transfer", id: nextId++, callId, targetUri, reason }, TRANSFER_TIMEOUT_MS),
          },
          message.address,
          credentials,
        );
        server = started.server;
        say({ t: "ready", port: started.port });
      } catch (error) {
        say({ t: "error", message: error instanceof Error ? error.message : String(error) });
        await out.close();
        Deno.exit(2);
      }
    } else if (message.t === "answer") {
      pending.get(message.id)?.({
        success: message.success,
        message: message.message,
        sipStatus: message.sipStatus ?? 0,
      });
      pending.delete(message.id);
    }
  }
  // The parent is gone (or closed the pipe to stop us).
  server?.forceShutdown();
  Deno.exit(0);
}

if (import.meta.main) await runSignalingChild();
