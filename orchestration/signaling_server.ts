/**
 * Our own gRPC service: `sentiric.sip.v1.SipSignalingService` (TerminateCall, TransferCall), on grpc-js.
 * It runs in its own process (`signaling_child.ts`, supervised by `signaling_relay.ts`):
 * on Deno 2.9 a `node:http2` server aborts the whole process when a client closes its
 * session with streams in flight (nghttp2 assertion / SIGSEGV, denoland/deno#36788),
 * and that must never take the calls of the SIP service with it.
 */
import * as grpc from "@grpc/grpc-js";
import {
  SipSignalingServiceService,
  type TerminateCallRequest,
  type TerminateCallResponse,
  type TransferCallRequest,
  type TransferCallResponse,
} from "../proto/gen/sentiric/sip/v1/signaling.ts";

/** What answers TerminateCall and TransferCall; in the child process, a relay to the service. */
export interface CallTerminator {
  terminate(callId: string, reason: string): Promise<{ success: boolean; message: string }>;
  transfer(
    callId: string,
    targetUri: string,
    reason: string,
  ): Promise<{ success: boolean; message: string; sipStatus: number }>;
}

function unavailable(error: unknown): grpc.ServiceError {
  return {
    code: grpc.status.UNAVAILABLE,
    details: error instanceof Error ? error.message : String(error),
  } as grpc.ServiceError;
}

export async function startSignalingServer(
  terminator: CallTerminator,
  address: string,
  credentials: grpc.ServerCredentials,
): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(SipSignalingServiceService, {
    terminateCall(
      call: grpc.ServerUnaryCall<TerminateCallRequest, TerminateCallResponse>,
      callback: grpc.sendUnaryData<TerminateCallResponse>,
    ) {
      terminator.terminate(call.request.callId, call.request.reason).then(
        (answer) => callback(null, answer),
        (error: unknown) => callback(unavailable(error)),
      );
    },
    transferCall(
      call: grpc.ServerUnaryCall<TransferCallRequest, TransferCallResponse>,
      callback: grpc.sendUnaryData<TransferCallResponse>,
    ) {
      const { callId, targetUri, reason } = call.request;
      terminator.transfer(callId, targetUri, reason).then(
        (answer) => callback(null, answer),
        (error: unknown) => callback(unavailable(error)),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (e, p) => (e ? reject(e) : resolve(p)))
  );
  return { server, port };
}
