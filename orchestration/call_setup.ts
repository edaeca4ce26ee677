/**
 * Call setup (CONTRACTS.md section 1): on a new INVITE (100 Trying already sent by
 * the dialog layer) ResolveDialplan, then AllocatePort, then 200 OK with the SDP
 * answer, then `call.started`. Any failure maps, in `failureResponse`, to one SIP
 * status; the port is released and nothing is published. Call end from any side
 * releases the port and publishes `call.ended`.
 */
import * as grpc from "@grpc/grpc-js";
import { getLogger, type Logger } from "@logtape/logtape";
import {
  type CallController,
  type Dialog,
  type DialogManager,
  type IncomingCall,
  type SipRequest,
} from "../sip/mod.ts";
import { ActionType, type ResolveDialplanResponse } from "../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import { callAnswered, callDtmf, callEnded, callStarted, type EventPublisher } from "./events.ts";
import { callerUri, dtmfOf, forwardedHeaders, HeaderPatterns } from "./caller_context.ts";
import { CallTransfers, type TransferAnswer } from "./transfer.ts";
import { UpstreamError } from "./grpc.ts";
import { answerOffer, createOffer } from "./sdp.ts";
import { failureResponse, OverloadError, PlanRejectedError, SetupTimeoutError } from "./failures.ts";

export {
  failureResponse,
  OverloadError,
  PlanRejectedError,
  RETRY_AFTER_SECONDS,
  SetupTimeoutError,
} from "./failures.ts";
import { callTraceContext, inSpan, startClientSpan, traceIdOf } from "./trace.ts";
import { maskPhoneNumbers } from "./logging.ts";

export { normalizeNumber } from "./call_record.ts";
export type { CallBackends, CallRecord, OrchestratorCounters, OrchestratorOptions } from "./call_record.ts";
import {
  BUDGET_MARGIN_MS,
  type CallBackends,
  type CallRecord,
  isAnonymous,
  normalizeNumber,
  type OrchestratorCounters,
  type OrchestratorOptions,
  userPart,
} from "./call_record.ts";

const log = getLogger(["orchestration", "call"]);

export class CallOrchestrator implements CallController<CallRecord> {
  readonly #upstreams: CallBackends;
  readonly #events: EventPublisher;
  readonly #dialogs: DialogManager<CallRecord>;
  readonly #options: OrchestratorOptions;
  /** Calls ended, by the reason published in `call.ended`. */
  readonly endedByReason = new Map<string, number>();
  readonly counters: OrchestratorCounters = {
    callsOffered: 0,
    callsAnswered: 0,
    callsRejected: 0,
    callsShed: 0,
    callsEnded: 0,
    portReleaseFailures: 0,
  };

  constructor(
    upstreams: CallBackends,
    events: EventPublisher,
    dialogs: DialogManager<CallRecord>,
    options: OrchestratorOptions,
  ) {
    this.#upstreams = upstreams;
    this.#events = events;
    this.#dialogs = dialogs;
    this.#options = options;
    this.#forwardHeaders = new HeaderPatterns(options.forwardHeaders ?? "X-*");
    this.#transfers = new CallTransfers(events);
  }

  readonly #forwardHeaders: HeaderPatterns;
  readonly #transfers: CallTransfers;

  #inSetup = 0;

  /** Calls between INVITE and their 200 or rejection. */
  get callsInSetup(): number {
    return this.#inSetup;
  }

  #accepting = true;
  /** True while new calls are refused because events pile up for the bus. */
  #eventBacklog = false;

  /** Shutdown: from now on every new call gets 503 with Retry-After, no backend asked. */
  stopAccepting(): void {
    this.#accepting = false;
  }

  /** False once draining or shutting down. */
  get accepting(): boolean {
    return this.#accepting;
  }

  onIncomingCall(call: IncomingCall<CallRecord>): void {
    this.counters.callsOffered++;
    if (!this.#accepting || this.#options.ready?.() === false) {
      const { status, headers } = failureResponse(new OverloadError("not taking calls"));
      call.reject(status, headers);
      return;
    }
    if (this.#inSetup >= (this.#options.maxCallsInSetup ?? 500)) {
      this.counters.callsShed++;
      const { status, headers } = failureResponse(new OverloadError("too many calls in setup"));
      call.reject(status, headers);
      return;
    }
    if (this.#dialogs.size.dialogs + this.#inSetup >= (this.#options.maxCalls ?? 100_000)) {
      this.counters.callsShed++;
      const { status, headers } = failureResponse(
        new OverloadError("SIP_SIGNALING_SERVICE_MAX_CALLS reached"),
      );
      call.reject(status, headers);
      return;
    }
    const backlog = this.#events.pending >= (this.#options.maxEventsPending ?? 10_000);
    if (backlog !== this.#eventBacklog) {
      this.#eventBacklog = backlog;
      if (backlog) {
        log.error("{pending} events wait for the bus: new calls get 503 until it takes them", {
          pending: this.#events.pending,
        });
      } else log.info("The event bus caught up: taking calls again", { pending: this.#events.pending });
    }
    if (backlog) {
      this.counters.callsShed++;
      const { status, headers } = failureResponse(new OverloadError("event bus backlog"));
      call.reject(status, headers);
      return;
    }
    this.#inSetup++;
    const traceId = traceIdOf(call.request);
    this.#traceIds.set(call, traceId);
    this.#track(
      this.#setUp(call, traceId)
        .catch((error) =>
          log.error("Unexpected error in call setup: {error}", { traceId, callId: call.callId, error })
        )
        .finally(() => this.#inSetup--),
    );
  }

  /** Call setups and port releases still waiting on a backend. */
  readonly #inFlight = new Set<Promise<void>>();

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    work.finally(() => this.#inFlight.delete(work));
  }

  /**
   * Waits (at most `timeoutMs`) for every call setup and port release in flight to
   * finish: at shutdown, so the ports of the calls just ended go back to the media
   * service before the process exits.
   */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inFlight.size > 0 && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#inFlight]),
        new Promise((r) => timer = setTimeout(r, Math.max(0, deadline - Date.now()))),
      ]);
      clearTimeout(timer);
    }
    return this.#inFlight.size === 0;
  }

  /** The trace id of each call in setup (for the CANCEL's log line). */
  readonly #traceIds = new WeakMap<IncomingCall<CallRecord>, string>();

  async #setUp(call: IncomingCall<CallRecord>, traceId: string): Promise<void> {
    const clog = log.with({ traceId, callId: call.callId });
    // One budget from the INVITE to the final answer; past it, 503 whatever is pending.
    const deadline = Date.now() + (this.#options.setupTimeoutMs ?? 2000) - BUDGET_MARGIN_MS;
    const guard = setTimeout(() => {
      if (call.answered) return;
      this.counters.callsRejected++;
      const { status, headers } = failureResponse(new SetupTimeoutError());
      clog.warn("Call rejected with {status}: the backends did not answer within the setup budget", {
        status,
      });
      call.reject(status, headers);
    }, Math.max(0, deadline - Date.now()));
    try {
      await inSpan(
        "sip.call.setup",
        { "sip.call_id": call.callId, "sip.trace_id": traceId },
        () => this.#setUpWithin(call, traceId, deadline, clog),
        callTraceContext(traceId, call.request),
      );
    } finally {
      clearTimeout(guard);
    }
  }

  async #setUpWithin(
    call: IncomingCall<CallRecord>,
    traceId: string,
    deadline: number,
    clog: Logger,
  ): Promise<void> {
    const request = call.request;
    // RFC 3325: the network-asserted identity, when the gateway passes one, is the caller.
    const caller = normalizeNumber(userPart(callerUri(request)), this.#options.defaultCountryCode);
    const called = normalizeNumber(
      userPart(request.uri) || userPart(request.to.uri),
      this.#options.defaultCountryCode,
    );
    clog.debug("INVITE from {caller} to {called}", { caller, called });
    let rtpPort: number | undefined;
    let accepted = false;
    try {
      const plan = await this.#upstreams.resolveDialplan(
        { callerContactValue: caller, destinationNumber: called },
        traceId,
        deadline,
      );
      if (plan.action === undefined || plan.action.type === ActionType.ACTION_TYPE_UNSPECIFIED) {
        throw new PlanRejectedError("unspecified");
      }
      if (plan.inboundRoute?.isMaintenanceMode === true) throw new PlanRejectedError("maintenance");
      if (plan.inboundRoute?.blockAnonymous === true && isAnonymous(request)) {
        throw new PlanRejectedError("anonymous");
      }
      if (call.answered) return; // Cancelled meanwhile.
      rtpPort = await this.#allocatePort(call.callId, traceId, deadline);
      if (call.answered) {
        await this.#release(rtpPort, traceId);
        return;
      }
      const lateOffer = request.body.length === 0;
      const sdp = lateOffer
        ? { body: createOffer(this.#options.publicIp, rtpPort), callerRtpAddr: "" }
        : answerOffer(request.body, this.#options.publicIp, rtpPort);
      const record: CallRecord = {
        traceId,
        rtpPort,
        callerRtpAddr: sdp.callerRtpAddr,
        dialplan: plan,
        lateOffer,
        started: false,
        sdpVersion: 1,
        sipHeaders: forwardedHeaders(request.headers, this.#forwardHeaders),
        transfer: undefined,
      };
      const dialog = call.accept(sdp.body, record);
      if (dialog === undefined) {
        await this.#release(rtpPort, traceId);
        return;
      }
      accepted = true;
      this.counters.callsAnswered++;
      clog.info("Call from {caller} to {called} answered: action {action}, RTP port {rtpPort}", {
        caller: maskPhoneNumbers(caller),
        called: maskPhoneNumbers(called),
        action: plan.action.action,
        rtpPort,
      });
      if (!lateOffer) this.#publishStarted(dialog, record);
    } catch (error) {
      if (accepted) throw error; // The call is up; its port goes back when it ends.
      if (rtpPort !== undefined) this.#track(this.#release(rtpPort, traceId));
      if (call.answered) return; // The budget's guard (or a CANCEL) answered already.
      const { status, headers } = failureResponse(error);
      this.counters.callsRejected++;
      clog.warn("Call rejected with {status}: {reason}", {
        status,
        reason: maskPhoneNumbers(error instanceof Error ? error.message : String(error)),
      });
      call.reject(status, headers);
    }
  }

  #publishStarted(dialog: Dialog<CallRecord>, record: CallRecord): void {
    record.started = true;
    // The span covers the hand-off to the outbox; the broker's confirm comes later.
    const span = startClientSpan("publish call.started", {
      "messaging.system": "rabbitmq",
      "sip.trace_id": record.traceId,
    });
    this.#events.publish(callStarted({
      traceId: record.traceId,
      callId: dialog.callId,
      fromUri: dialog.remoteUri,
      toUri: dialog.localUri,
      dialplan: record.dialplan as ResolveDialplanResponse,
      media: { callerRtpAddr: record.callerRtpAddr, serverRtpPort: record.rtpPort },
      sipHeaders: record.sipHeaders,
    }));
    record.dialplan = undefined;
    record.sipHeaders = {};
    span.end();
  }

  onAnswered(dialog: Dialog<CallRecord>, ackBody: Uint8Array): void {
    const record = dialog.data;
    if (record === undefined) return;
    if (record.lateOffer && !record.started) {
      try {
        // The ACK carries the caller's answer to our offer; read its address.
        record.callerRtpAddr = answerOffer(ackBody, this.#options.publicIp, record.rtpPort).callerRtpAddr;
      } catch (error) {
        log.warn("ACK answer unusable: {error}", { traceId: record.traceId, error });
      }
      this.#publishStarted(dialog, record);
    }
    this.#events.publish(callAnswered({ traceId: record.traceId, callId: dialog.callId }));
  }

  onEnded(dialog: Dialog<CallRecord>, ended: string): void {
    const record = dialog.data;
    if (record === undefined) return;
    const reason = this.#transfers.endReason(dialog, ended);
    this.counters.callsEnded++;
    // The agent's free-text reasons must not grow this without bound.
    const key = this.endedByReason.has(reason) || this.endedByReason.size < 64 ? reason : "other";
    this.endedByReason.set(key, (this.endedByReason.get(key) ?? 0) + 1);
    log.info("Call ended: {reason}", { traceId: record.traceId, callId: dialog.callId, reason });
    // CONTRACTS.md section 1: ReleasePort, then call.ended (neither waits for the other).
    this.#track(this.#release(record.rtpPort, record.traceId));
    if (record.started) {
      this.#events.publish(callEnded({
        traceId: record.traceId,
        callId: dialog.callId,
        reason,
        media: { callerRtpAddr: record.callerRtpAddr, serverRtpPort: record.rtpPort },
      }));
    }
  }

  answerReoffer(dialog: Dialog<CallRecord>, offer: Uint8Array): Uint8Array | undefined {
    const record = dialog.data;
    if (record === undefined) return undefined;
    record.sdpVersion++;
    if (offer.length === 0) return createOffer(this.#options.publicIp, record.rtpPort);
    try {
      return answerOffer(offer, this.#options.publicIp, record.rtpPort, record.sdpVersion).body;
    } catch {
      return undefined;
    }
  }

  onCancelled(call: IncomingCall<CallRecord>): void {
    log.info("Call cancelled by the caller during setup", {
      traceId: this.#traceIds.get(call),
      callId: call.callId,
    });
  }

  /** INFO (DTMF: `call.dtmf`, in order) and NOTIFY (a transfer's progress) in a call's dialog. */
  onInDialogRequest(dialog: Dialog<CallRecord>, request: SipRequest): number | undefined {
    const record = dialog.data;
    if (record === undefined) return undefined;
    if (request.method === "NOTIFY") return this.#transfers.notify(dialog, request);
    const press = dtmfOf(request);
    if (press !== undefined && record.started) {
      this.#events.publish(callDtmf({ traceId: record.traceId, callId: dialog.callId, ...press }));
    }
    return undefined;
  }

  /** TransferCall (7.1): REFER in the call's dialog; answers on its final response. */
  transfer(callId: string, targetUri: string, reason: string): Promise<TransferAnswer> {
    const dialog = this.#dialogs.findByCallId(callId);
    if (dialog === undefined || dialog.state === "terminated") {
      return Promise.resolve({
        success: false,
        message: `no active call with Call-ID ${callId}`,
        sipStatus: 0,
      });
    }
    return this.#transfers.start(dialog, targetUri, reason);
  }

  /** TerminateCall: BYE to the caller, port released, `call.ended` with `reason`. */
  terminate(callId: string, reason: string): { success: boolean; message: string } {
    const dialog = this.#dialogs.findByCallId(callId);
    if (dialog === undefined || dialog.state === "terminated") {
      return { success: false, message: `no active call with Call-ID ${callId}` };
    }
    this.#dialogs.terminate(dialog, reason === "" ? "terminated_by_request" : reason);
    return { success: true, message: "BYE sent" };
  }

  /**
   * AllocatePort, waited for until the setup deadline. Past it the caller gets 503
   * (as for any deadline), and a port the media service hands out later is released
   * at once instead of staying allocated forever.
   */
  async #allocatePort(callId: string, traceId: string, deadline: number): Promise<number> {
    const limitMs = Math.max(0, deadline - Date.now());
    const allocation = this.#upstreams.allocatePort(callId, traceId);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = Symbol("late");
    const first = await Promise.race([
      allocation,
      new Promise<typeof late>((resolve) => timer = setTimeout(() => resolve(late), limitMs)),
    ]).finally(() => clearTimeout(timer));
    if (first !== late) return first;
    this.#track(allocation.then((port) => this.#release(port, traceId), () => {}));
    throw new UpstreamError("media", grpc.status.DEADLINE_EXCEEDED, `AllocatePort took over ${limitMs} ms`);
  }

  async #release(rtpPort: number, traceId: string): Promise<void> {
    try {
      await this.#upstreams.releasePort(rtpPort, traceId);
    } catch (error) {
      this.counters.portReleaseFailures++;
      log.error("ReleasePort {rtpPort} failed: {error}", { traceId, rtpPort, error });
    }
  }
}
