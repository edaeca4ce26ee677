import { Buffer } from "node:buffer";
/**
 * gRPC clients of the services the call setup depends on: one long-lived channel per
 * service, `x-trace-id` metadata and a deadline on every call, mTLS when configured.
 * Errors come back as `UpstreamError` with the gRPC status, for the failure table.
 */
import * as grpc from "@grpc/grpc-js";
import {
  DialplanServiceClient,
  type ResolveDialplanRequest,
  type ResolveDialplanResponse,
} from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import {
  type AllocatePortResponse,
  MediaServiceClient,
  type ReleasePortResponse,
} from "../proto/gen/sentiric/media/v1/media.ts";
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { startClientSpan, traceparentFor } from "./trace.ts";
import { type FindUserByContactResponse, UserServiceClient } from "../proto/gen/sentiric/user/v1/user.ts";

/** A failed call to another service. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  readonly service: "dialplan" | "media" | "user";
  readonly code: grpc.status;
  constructor(service: "dialplan" | "media" | "user", code: grpc.status, message: string, cause?: unknown) {
    super(`${service}: ${grpc.status[code] ?? code}: ${message}`, { cause });
    this.service = service;
    this.code = code;
  }
}

/** An RTP port as AllocatePort must give it; anything else is the media service's error. */
export function checkedPort(rtpPort: number): number {
  if (!(rtpPort > 0 && rtpPort < 65536)) {
    throw new UpstreamError("media", grpc.status.INTERNAL, `invalid rtp_port ${rtpPort}`);
  }
  return rtpPort;
}

/** Certificates, key and CA as bytes (read by main.ts) plus the server names to expect. */
export interface MutualTls {
  readonly cert: Uint8Array;
  readonly key: Uint8Array;
  readonly ca: Uint8Array;
}

export function clientCredentials(tls: MutualTls | undefined): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert));
}

export function serverCredentials(tls: MutualTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    Buffer.from(tls.ca),
    [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }],
    true,
  );
}

/**
 * Reconnect backoff: grpc-js defaults to 1 s growing to 120 s, so a backend that
 * restarts (a deploy) would cost a second of failed calls and one that was down for
 * minutes could stay unused for up to two more after it is back. Calls wait for the
 * channel (up to their deadline, see `call`) instead of failing at once.
 */
export const RECONNECT_BACKOFF_MS = { initial: 100, max: 2000 } as const;

function channelOptions(tls: MutualTls | undefined, serverName: string): grpc.ChannelOptions {
  const backoff = {
    "grpc.initial_reconnect_backoff_ms": RECONNECT_BACKOFF_MS.initial,
    "grpc.max_reconnect_backoff_ms": RECONNECT_BACKOFF_MS.max,
  };
  return tls === undefined
    ? backoff
    : { ...backoff, "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName };
}

function metadata(traceId: string, traceparent: string): grpc.Metadata {
  // waitForReady: while the channel reconnects (a backend restart), a call waits for
  // it within its deadline rather than failing with UNAVAILABLE at once.
  const md = new grpc.Metadata({ waitForReady: true });
  md.set("x-trace-id", traceId);
  md.set("traceparent", traceparent);
  return md;
}

type Unary<Req, Res> = (
  request: Req,
  md: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Each finished call: for `sip_signaling_grpc_client_duration_seconds{service,method,code}`. */
export type GrpcCallObserver = (service: string, method: string, code: string, seconds: number) => void;

export type BackendName = "dialplan" | "media" | "user";

/** How a unary call ended, as `tracedCall`'s `invoke` reports it. */
export type UnaryDone<Res> = (error: { code: grpc.status; details: string } | null, response?: Res) => void;

/**
 * One unary call to a backend under a client span, observed for the metrics: `invoke`
 * makes it (here through grpc-js, or through the gRPC client process), passing on the
 * `traceparent` of the span.
 */
export function tracedCall<Res>(
  service: BackendName,
  name: string,
  traceId: string,
  observe: GrpcCallObserver | undefined,
  invoke: (traceparent: string, done: UnaryDone<Res>) => void,
): Promise<Res> {
  const started = performance.now();
  const span = startClientSpan(`${service}/${name}`, {
    "rpc.system": "grpc",
    "rpc.method": name,
    "sip.trace_id": traceId,
  });
  return new Promise((resolve, reject) => {
    // The client span is active while the call starts, so the runtime's own HTTP/2
    // span (OTEL_DENO) nests under it.
    context.with(
      trace.setSpan(context.active(), span),
      () =>
        invoke(traceparentFor(traceId, span), (error, response) => {
          const code = error === null ? grpc.status.OK : error.code;
          const codeName = grpc.status[code] ?? String(code);
          observe?.(service, name, codeName, (performance.now() - started) / 1000);
          span.setAttribute("rpc.grpc.status_code", code);
          if (error !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: codeName });
          span.end();
          if (error !== null) reject(new UpstreamError(service, error.code, error.details, error));
          else resolve(response as Res);
        }),
    );
  });
}

/** `deadline`: epoch milliseconds. */
function unary<Req, Res>(
  method: Unary<Req, Res>,
  request: Req,
  traceId: string,
  traceparent: string,
  deadline: number,
  done: UnaryDone<Res>,
): void {
  method(request, metadata(traceId, traceparent), { deadline }, (error, response) => {
    if (error === null) done(null, response);
    else done({ code: error.code, details: error.details || error.message });
  });
}

/** A call as the gRPC client process receives it (see `upstreams_process.ts`). */
export type RelayedCall =
  | { method: "resolveDialplan"; request: ResolveDialplanRequest }
  | { method: "allocatePort"; request: { callId: string } }
  | { method: "releasePort"; request: { rtpPort: number } };

/** Which backend a relayed call goes to, and its gRPC method name. */
export const RELAYED_METHODS = {
  resolveDialplan: { service: "dialplan", name: "ResolveDialplan" },
  allocatePort: { service: "media", name: "AllocatePort" },
  releasePort: { service: "media", name: "ReleasePort" },
} as const satisfies Record<RelayedCall["method"], { service: BackendName; name: string }>;

export interface UpstreamOptions {
  readonly dialplanUrl: string;
  readonly mediaUrl: string;
  readonly userUrl?: string | undefined;
  /**
   * Deadline of a call given none of its own (FindUserByContact, ResolveDialplan outside
   * call setup). Call setup passes what is left of its budget instead.
   */
  readonly deadlineMs: number;
  /**
   * Deadline of AllocatePort and ReleasePort, which change the media service's state.
   * A call that misses its deadline may still have taken effect there, and a port
   * allocated so is never released (the contract releases by port number only): so
   * these get room (default the larger of 3 s and 2 x `deadlineMs`), and call setup
   * stops waiting for AllocatePort at its budget on its own, releasing a late port.
   */
  readonly mediaDeadlineMs?: number;
  readonly tls?: MutualTls | undefined;
  readonly observe?: GrpcCallObserver | undefined;
}

/** A backend channel's state as grpc-js names it: IDLE, CONNECTING, READY, TRANSIENT_FAILURE, SHUTDOWN. */
export type ChannelState = keyof typeof grpc.connectivityState;

/** The three clients, each on its own long-lived channel. */
export class Upstreams {
  readonly #dialplan: DialplanServiceClient;
  readonly #media: MediaServiceClient;
  readonly #user: UserServiceClient | undefined;
  readonly deadlineMs: number;
  readonly mediaDeadlineMs: number;
  readonly #observe: GrpcCallObserver | undefined;
  // Bound once: each call would otherwise bind its method anew.
  readonly #resolveDialplan: Unary<ResolveDialplanRequest, ResolveDialplanResponse>;
  readonly #allocatePort: Unary<{ callId: string }, AllocatePortResponse>;
  readonly #releasePort: Unary<{ rtpPort: number }, ReleasePortResponse>;

  constructor(options: UpstreamOptions) {
    this.#observe = options.observe;
    const creds = clientCredentials(options.tls);
    this.deadlineMs = options.deadlineMs;
    this.mediaDeadlineMs = options.mediaDeadlineMs ?? Math.max(3000, 2 * options.deadlineMs);
    this.#dialplan = new DialplanServiceClient(
      options.dialplanUrl,
      creds,
      channelOptions(options.tls, "dialplan-service"),
    );
    this.#media = new MediaServiceClient(
      options.mediaUrl,
      creds,
      channelOptions(options.tls, "media-service"),
    );
    this.#user = options.userUrl === undefined
      ? undefined
      : new UserServiceClient(options.userUrl, creds, channelOptions(options.tls, "user-service"));
    this.#resolveDialplan = this.#dialplan.resolveDialplan.bind(this.#dialplan);
    this.#allocatePort = this.#media.allocatePort.bind(this.#media);
    this.#releasePort = this.#media.releasePort.bind(this.#media);
  }

  resolveDialplan(
    request: ResolveDialplanRequest,
    traceId: string,
    deadline: number = Date.now() + this.deadlineMs,
  ): Promise<ResolveDialplanResponse> {
    return this.#traced({ method: "resolveDialplan", request }, traceId, deadline);
  }

  async allocatePort(callId: string, traceId: string): Promise<number> {
    const r = await this.#traced<AllocatePortResponse>(
      { method: "allocatePort", request: { callId } },
      traceId,
      0,
    );
    return checkedPort(r.rtpPort);
  }

  async releasePort(rtpPort: number, traceId: string): Promise<boolean> {
    return (await this.#traced<ReleasePortResponse>(
      { method: "releasePort", request: { rtpPort } },
      traceId,
      0,
    ))
      .success;
  }

  /** A call `relay` makes, under its client span and observed. */
  #traced<Res>(call: RelayedCall, traceId: string, deadline: number): Promise<Res> {
    const { service, name } = RELAYED_METHODS[call.method];
    return tracedCall<Res>(
      service,
      name,
      traceId,
      this.#observe,
      (traceparent, done) => this.relay(call, traceId, traceparent, deadline, done as UnaryDone<unknown>),
    );
  }

  findUserByContact(contactValue: string, traceId: string): Promise<FindUserByContactResponse> {
    const user = this.#user;
    if (user === undefined) {
      return Promise.reject(new UpstreamError("user", grpc.status.UNAVAILABLE, "no URL"));
    }
    const deadline = Date.now() + this.deadlineMs;
    return tracedCall("user", "FindUserByContact", traceId, this.#observe, (traceparent, done) =>
      unary(
        user.findUserByContact.bind(user),
        { contactType: "phone", contactValue },
        traceId,
        traceparent,
        deadline,
        done,
      ));
  }

  /**
   * Makes a call without a span or an observation of its own: for the gRPC client
   * process, whose parent traces and observes it. `deadline` 0: the media deadline
   * from now (AllocatePort, ReleasePort).
   */
  relay(
    call: RelayedCall,
    traceId: string,
    traceparent: string,
    deadline: number,
    done: UnaryDone<unknown>,
  ): void {
    const media = deadline || Date.now() + this.mediaDeadlineMs;
    switch (call.method) {
      case "resolveDialplan":
        return unary(this.#resolveDialplan, call.request, traceId, traceparent, deadline, done);
      case "allocatePort":
        return unary(this.#allocatePort, call.request, traceId, traceparent, media, done);
      case "releasePort":
        return unary(this.#releasePort, call.request, traceId, traceparent, media, done);
    }
  }

  /** Each backend channel's state now; `connect` asks an idle channel to connect (a readiness probe). */
  channelStates(connect = false): { dialplan: ChannelState; media: ChannelState } {
    const state = (client: grpc.Client) =>
      grpc.connectivityState[client.getChannel().getConnectivityState(connect)] as ChannelState;
    return { dialplan: state(this.#dialplan), media: state(this.#media) };
  }

  /** Calls `listener` with both channels' states whenever one changes. */
  watchChannels(listener: (states: { dialplan: ChannelState; media: ChannelState }) => void): void {
    for (const client of [this.#dialplan, this.#media]) {
      const channel = client.getChannel();
      const watch = () => {
        channel.watchConnectivityState(channel.getConnectivityState(false), Infinity, () => {
          listener(this.channelStates());
          watch();
        });
      };
      watch();
    }
  }

  close(): void {
    this.#dialplan.close();
    this.#media.close();
    this.#user?.close();
  }
}
