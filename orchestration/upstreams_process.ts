/**
 * The backend clients as the service uses them: the calls run in a supervised child
 * process (`upstreams_child.ts`), because a backend's GOAWAY can crash Deno's
 * `node:http2` client inside nghttp2 (denoland/deno#36788; a Node.js gRPC server
 * closing gracefully after 20 to 300 calls crashed a Deno grpc-js client in 4 runs of 5 here).
 * A backend deploy must not end the calls that are up.
 *
 * If the child dies, it is started again (`supervised_child.ts`), and the calls it had:
 * - ResolveDialplan and ReleasePort (safe to repeat) are sent again to the new child;
 * - AllocatePort fails with UNAVAILABLE (it may have taken a port the media service
 *   gave to nobody, and a second one would take another), so that call gets 503.
 * Calls made while no child runs wait for the next one, within their deadline.
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import type { CallBackends } from "./call_setup.ts";
import {
  checkedPort,
  type GrpcCallObserver,
  type MutualTls,
  RELAYED_METHODS,
  type RelayedCall,
  tracedCall,
  type UnaryDone,
} from "./grpc.ts";
import { getLogger } from "@logtape/logtape";
import { SupervisedChild } from "./supervised_child.ts";
import {
  type ChannelStates,
  UPSTREAMS_CHILD_FLAG,
  type UpstreamsChildMessage,
  type UpstreamsParentMessage,
} from "./upstreams_child.ts";

export interface UpstreamsProcessOptions {
  readonly dialplanUrl: string;
  readonly mediaUrl: string;
  /** Deadline of ResolveDialplan outside call setup. */
  readonly deadlineMs: number;
  /** Deadline of AllocatePort and ReleasePort (see `UpstreamOptions.mediaDeadlineMs`). */
  readonly mediaDeadlineMs?: number;
  readonly tls?: MutualTls | undefined;
  readonly observe?: GrpcCallObserver | undefined;
}

interface PendingCall {
  readonly message: UpstreamsParentMessage & { t: "call" };
  readonly done: UnaryDone<unknown>;
  /** Sent to the child that runs now. */
  sent: boolean;
}

const log = getLogger(["orchestration", "upstreams"]);

/** How often calls waiting for a child are checked against their deadline. */
const WAITING_CHECK_MS = 50;

export class UpstreamsProcess implements CallBackends {
  readonly #options: UpstreamsProcessOptions;
  readonly #mediaDeadlineMs: number;
  readonly #pending = new Map<number, PendingCall>();
  #nextId = 1;
  #child!: SupervisedChild<UpstreamsParentMessage, UpstreamsChildMessage>;
  #states: ChannelStates = { dialplan: "IDLE", media: "IDLE" };
  #waitingTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(options: UpstreamsProcessOptions) {
    this.#options = options;
    this.#mediaDeadlineMs = options.mediaDeadlineMs ?? Math.max(3000, 2 * options.deadlineMs);
  }

  /** Starts the gRPC client process; rejects if it cannot start. */
  static async start(options: UpstreamsProcessOptions): Promise<UpstreamsProcess> {
    const self = new UpstreamsProcess(options);
    const tls = options.tls;
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
    self.#child = await SupervisedChild.start<UpstreamsParentMessage, UpstreamsChildMessage>({
      what: "gRPC client",
      flag: UPSTREAMS_CHILD_FLAG,
      module: new URL("./upstreams_child.ts", import.meta.url),
      // Our client span (in this process) is the call's; the runtime's HTTP/2 spans in
      // the child would start traces of their own and replace our traceparent.
      env: { OTEL_DENO: "false" },
      config: {
        t: "config",
        dialplanUrl: options.dialplanUrl,
        mediaUrl: options.mediaUrl,
        deadlineMs: options.deadlineMs,
        ...(tls === undefined ? {} : { tls: { cert: b64(tls.cert), key: b64(tls.key), ca: b64(tls.ca) } }),
      } satisfies UpstreamsParentMessage,
      onMessage: (message) => self.#onMessage(message),
      onReady: (ready, pid) => {
        log.info("Backend calls made by process {pid}", { pid });
        self.#onReady(ready.states as ChannelStates);
      },
      onExit: () => self.#onExit(),
    });
    return self;
  }

  /** Times the gRPC client process died and was started again. */
  get restarts(): number {
    return this.#child.restarts;
  }

  /** Each backend channel's state as the child last reported it; `connect` asks idle ones to connect. */
  channelStates(connect = false): ChannelStates {
    if (connect) this.#child.send({ t: "connect" });
    return this.#states;
  }

  resolveDialplan(
    request: { callerContactValue: string; destinationNumber: string },
    traceId: string,
    deadline: number,
  ): Promise<ResolveDialplanResponse> {
    return this.#call({ method: "resolveDialplan", request }, traceId, deadline)
      .then((json) => ResolveDialplanResponse.fromJSON(json));
  }

  async allocatePort(callId: string, traceId: string): Promise<number> {
    const response = await this.#call(
      { method: "allocatePort", request: { callId } },
      traceId,
      Date.now() + this.#mediaDeadlineMs,
    ) as { rtpPort: number };
    return checkedPort(response.rtpPort);
  }

  async releasePort(rtpPort: number, traceId: string): Promise<boolean> {
    const response = await this.#call(
      { method: "releasePort", request: { rtpPort } },
      traceId,
      Date.now() + this.#mediaDeadlineMs,
    ) as { success: boolean };
    return response.success;
  }

  #call(call: RelayedCall, traceId: string, deadline: number): Promise<unknown> {
    const { service, name } = RELAYED_METHODS[call.method];
    return tracedCall(service, name, traceId, this.#options.observe, (traceparent, done) => {
      const id = this.#nextId++;
      const message = { t: "call", id, call, traceId, traceparent, deadline } as const;
      const pending: PendingCall = { message, done, sent: false };
      this.#pending.set(id, pending);
      pending.sent = this.#child.send(message);
      if (!pending.sent) this.#checkWaiting();
    });
  }

  #onMessage(message: UpstreamsChildMessage): void {
    if (message.t === "states") {
      this.#states = message.states;
      return;
    }
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    pending.done(message.error ?? null, message.response);
  }

  #onReady(states: ChannelStates): void {
    this.#states = states;
    for (const pending of this.#pending.values()) {
      if (!pending.sent) pending.sent = this.#child.send(pending.message);
    }
  }

  #onExit(): void {
    this.#states = { dialplan: "CONNECTING", media: "CONNECTING" };
    for (const [id, pending] of this.#pending) {
      if (!pending.sent) continue;
      if (pending.message.call.method === "allocatePort") {
        this.#pending.delete(id);
        pending.done({
          code: grpc.status.UNAVAILABLE,
          details: "the gRPC client process died during the call",
        });
      } else pending.sent = false; // Safe to repeat: the next child sends it again.
    }
    this.#checkWaiting();
  }

  /** Fails calls that wait for a child past their deadline, as grpc-js would have. */
  #checkWaiting(): void {
    if (this.#waitingTimer !== undefined) return;
    this.#waitingTimer = setInterval(() => {
      const now = Date.now();
      let waiting = 0;
      for (const [id, pending] of this.#pending) {
        if (pending.sent) continue;
        if (pending.message.deadline <= now) {
          this.#pending.delete(id);
          pending.done({
            code: grpc.status.DEADLINE_EXCEEDED,
            details: "no gRPC client process within the deadline",
          });
        } else waiting++;
      }
      if (waiting === 0) {
        clearInterval(this.#waitingTimer);
        this.#waitingTimer = undefined;
      }
    }, WAITING_CHECK_MS);
  }

  /** Stops the child; calls still pending fail with UNAVAILABLE. */
  async close(): Promise<void> {
    clearInterval(this.#waitingTimer);
    this.#waitingTimer = undefined;
    await this.#child.close();
    for (const pending of this.#pending.values()) {
      pending.done({ code: grpc.status.UNAVAILABLE, details: "shutting down" });
    }
    this.#pending.clear();
  }
}
