/**
 * Supervises the process that serves TerminateCall (`signaling_child.ts`) and answers
 * the calls it relays. If that process dies (an abusive HTTP/2 client can crash Deno's
 * `node:http2` server, denoland/deno#36788), the SIP service and its calls go on: the
 * death is logged and counted, and a new one binds the same port at once (then after
 * a backoff growing to 5 s while it keeps dying). The agent's gRPC client reconnects.
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import type { MutualTls } from "./grpc.ts";
import type { ChildMessage, ParentMessage } from "./signaling_child.ts";
import { SupervisedChild } from "./supervised_child.ts";

const log = getLogger(["orchestration", "signaling"]);

export interface Terminator {
  terminate(callId: string, reason: string): { success: boolean; message: string };
  transfer(
    callId: string,
    targetUri: string,
    reason: string,
  ): Promise<{ success: boolean; message: string; sipStatus: number }>;
}

/** The internal flag the compiled binary runs its TerminateCall process with. */
export const SIGNALING_CHILD_FLAG = "--signaling-server-child";

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

export class SignalingServerProcess {
  /** The port TerminateCall listens on (as the first child bound it). */
  readonly port: number;
  readonly #child: SupervisedChild<ParentMessage, ChildMessage>;

  private constructor(child: SupervisedChild<ParentMessage, ChildMessage>) {
    this.#child = child;
    this.port = Number(child.ready?.port);
  }

  /** Times the TerminateCall process died and was started again. */
  get restarts(): number {
    return this.#child.restarts;
  }

  /** Starts the TerminateCall process on `address`; rejects with its own words if it cannot bind. */
  static async start(
    terminator: Terminator,
    address: string,
    tls: MutualTls | undefined,
  ): Promise<SignalingServerProcess> {
    const config: ParentMessage = {
      t: "config",
      address,
      ...(tls === undefined
        ? {}
        : { tls: { cert: base64(tls.cert), key: base64(tls.key), ca: base64(tls.ca) } }),
    };
    const self: { child?: SupervisedChild<ParentMessage, ChildMessage> } = {};
    const child = await SupervisedChild.start<ParentMessage, ChildMessage>({
      what: "TerminateCall",
      flag: SIGNALING_CHILD_FLAG,
      module: new URL("./signaling_child.ts", import.meta.url),
      config,
      onMessage(message) {
        const failed = (error: unknown) => ({
          success: false,
          message: error instanceof Error ? error.message : String(error),
        });
        if (message.t === "transfer") {
          terminator.transfer(message.callId, message.targetUri, message.reason).then(
            (answer) => self.child?.send({ t: "answer", id: message.id, ...answer }),
            (error: unknown) => self.child?.send({ t: "answer", id: message.id, ...failed(error) }),
          );
          return;
        }
        let answer: { success: boolean; message: string };
        try {
          answer = terminator.terminate(message.callId, message.reason);
        } catch (error) {
          answer = failed(error);
        }
        self.child?.send({ t: "answer", id: message.id, ...answer });
      },
      onReady(ready, pid) {
        log.info("TerminateCall served by process {pid} on port {port}", { pid, port: ready.port });
      },
    });
    self.child = child;
    return new SignalingServerProcess(child);
  }

  /** Stops the child (its stdin closes, it shuts its server down) and waits for it. */
  close(): Promise<void> {
    return this.#child.close();
  }
}
