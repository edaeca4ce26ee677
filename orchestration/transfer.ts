/**
 * Blind transfer (CONTRACTS.md 7.1; RFC 3515 REFER, RFC 3420 message/sipfrag): the
 * agent hands the caller to a human. We send REFER in the call's dialog; the RPC
 * answers with its final status. The far side reports progress in NOTIFYs (each
 * answered 200): a final 2xx sipfrag ends our leg (the far side's BYE, or ours after
 * 5 s) with `call.transferred` and `call.ended` reason `transferred`; a refused REFER,
 * a final non-2xx sipfrag or no final NOTIFY in 30 s leave the call up with the agent
 * and publish `call.transfer_failed`. One transfer at a time per call.
 */
import { getLogger } from "@logtape/logtape";
import { type Dialog, headerValue, type SipRequest } from "../sip/mod.ts";
import { callTransferFailed, callTransferred, type EventPublisher } from "./events.ts";
import { maskPhoneNumbers } from "./logging.ts";

const log = getLogger(["orchestration", "transfer"]);

/** How long the far side has to report the transfer's outcome (7.1). */
export const FINAL_NOTIFY_TIMEOUT_MS = 30_000;
/** After a successful transfer, how long we wait for the far side's BYE before sending ours (7.1). */
export const BYE_AFTER_TRANSFER_MS = 5_000;

/** What a call keeps of its transfer (on its record). */
export interface TransferState {
  readonly targetUri: string;
  /** The REFER was accepted; waiting for the final NOTIFY. */
  accepted: boolean;
  /** A final 2xx sipfrag arrived: the call ends as `transferred`. */
  succeeded: boolean;
}

/** The part of a call record a transfer needs. */
export interface Transferable {
  readonly traceId: string;
  transfer: TransferState | undefined;
}

export interface TransferAnswer {
  readonly success: boolean;
  readonly message: string;
  readonly sipStatus: number;
}

/** The status line of a message/sipfrag body (RFC 3420), e.g. `SIP/2.0 200 OK` -> 200. */
export function sipfragStatus(body: Uint8Array): number | undefined {
  const line = new TextDecoder().decode(body).split(/\r?\n/, 1)[0] ?? "";
  const m = /^SIP\/2\.0\s+(\d{3})\b/.exec(line.trim());
  return m === null ? undefined : Number(m[1]);
}

function isUri(target: string): boolean {
  return /^(sips?:[^\s<>]+@?[^\s<>]*|tel:\+?[\d\-.()]+[^\s<>]*)$/i.test(target);
}

export class CallTransfers {
  readonly #events: EventPublisher;

  constructor(events: EventPublisher) {
    this.#events = events;
  }

  /** Sends REFER for `dialog`'s call; resolves on its final response (the RPC's answer). */
  async start<T extends Transferable>(
    dialog: Dialog<T>,
    targetUri: string,
    reason: string,
  ): Promise<TransferAnswer> {
    const record = dialog.data;
    if (record === undefined || dialog.state !== "confirmed") {
      return { success: false, message: `call ${dialog.callId} is not answered yet`, sipStatus: 0 };
    }
    if (!isUri(targetUri)) {
      return { success: false, message: `target_uri must be a sip:, sips: or tel: URI`, sipStatus: 0 };
    }
    if (record.transfer !== undefined) {
      return {
        success: false,
        message: `a transfer of call ${dialog.callId} to ${record.transfer.targetUri} is in progress`,
        sipStatus: 0,
      };
    }
    const transfer: TransferState = { targetUri, accepted: false, succeeded: false };
    record.transfer = transfer;
    log.info("Transferring the call to {target}", {
      traceId: record.traceId,
      callId: dialog.callId,
      target: maskPhoneNumbers(targetUri),
      reason,
    });
    const tx = dialog.sendRequest("REFER", [
      { name: "Refer-To", value: `<${targetUri}>` },
      { name: "Referred-By", value: `<${dialog.localUri}>` },
      { name: "Contact", value: dialog.contact },
    ]);
    let status: number;
    try {
      status = (await tx.response).status;
    } catch {
      status = 0;
    }
    if (record.transfer !== transfer) {
      // A NOTIFY already settled it (it may overtake the 202).
      return { success: status >= 200 && status < 300, message: "REFER answered", sipStatus: status };
    }
    if (status >= 200 && status < 300) {
      transfer.accepted = true;
      dialog.setTimer(
        "transfer",
        FINAL_NOTIFY_TIMEOUT_MS,
        () => this.#failed(dialog, 0, "no final NOTIFY in 30 s"),
      );
      return { success: true, message: `REFER accepted (${status})`, sipStatus: status };
    }
    this.#failed(dialog, status, status === 0 ? "no answer to REFER" : "REFER refused");
    return {
      success: false,
      message: status === 0 ? "no answer to REFER" : `REFER refused (${status})`,
      sipStatus: status,
    };
  }

  /**
   * A NOTIFY in a call's dialog (RFC 3515 section 2.4.4): the status to answer it with.
   * 489 for an event other than refer, 481 when no transfer is under way.
   */
  notify<T extends Transferable>(dialog: Dialog<T>, request: SipRequest): number {
    const event = headerValue(request.headers, "Event")?.split(";")[0]?.trim().toLowerCase();
    if (event !== "refer") return 489;
    const record = dialog.data;
    const transfer = record?.transfer;
    if (record === undefined || transfer === undefined || transfer.succeeded) {
      return transfer?.succeeded === true ? 200 : 481;
    }
    const status = sipfragStatus(request.body);
    const state = headerValue(request.headers, "Subscription-State")?.split(";")[0]?.trim().toLowerCase();
    if (status === undefined) {
      if (state === "terminated") this.#failed(dialog, 0, "transfer ended without an outcome");
      return 200;
    }
    if (status < 200) return 200;
    if (status < 300) {
      transfer.succeeded = true;
      dialog.cancelTimer("transfer");
      this.#events.publish(
        callTransferred({ traceId: record.traceId, callId: dialog.callId, targetUri: transfer.targetUri }),
      );
      log.info("Call transferred to {target}", {
        traceId: record.traceId,
        callId: dialog.callId,
        target: maskPhoneNumbers(transfer.targetUri),
      });
      // The far side usually hangs up now; if not, we do.
      dialog.setTimer("transfer-bye", BYE_AFTER_TRANSFER_MS, () => dialog.terminate("transferred"));
      return 200;
    }
    this.#failed(dialog, status, "transfer target refused");
    return 200;
  }

  /** The call stays with the agent: `call.transfer_failed`, and another transfer may start. */
  #failed<T extends Transferable>(dialog: Dialog<T>, sipStatus: number, reason: string): void {
    const record = dialog.data;
    const transfer = record?.transfer;
    if (record === undefined || transfer === undefined || transfer.succeeded) return;
    record.transfer = undefined;
    dialog.cancelTimer("transfer");
    this.#events.publish(
      callTransferFailed({
        traceId: record.traceId,
        callId: dialog.callId,
        targetUri: transfer.targetUri,
        sipStatus,
        reason,
      }),
    );
    log.warn("Transfer to {target} failed: {reason}", {
      traceId: record.traceId,
      callId: dialog.callId,
      target: maskPhoneNumbers(transfer.targetUri),
      reason,
      sipStatus,
    });
  }

  /** The reason a call's end is published with: `transferred` after a successful transfer. */
  endReason<T extends Transferable>(dialog: Dialog<T>, reason: string): string {
    return dialog.data?.transfer?.succeeded === true ? "transferred" : reason;
  }
}
