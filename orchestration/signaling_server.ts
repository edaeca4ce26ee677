/** Our own gRPC service: `sentiric.sip.v1.SipSignalingService.TerminateCall`. */
import * as grpc from "@grpc/grpc-js";
import {
  SipSignalingServiceService,
  type TerminateCallRequest,
  type TerminateCallResponse,
} from "../proto/gen/sentiric/sip/v1/signaling.ts";

export interface CallTerminator {
  terminate(callId: string, reason: string): { success: boolean; message: string };
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
      callback(null, terminator.terminate(call.request.callId, call.request.reason));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (e, p) => (e ? reject(e) : resolve(p)))
  );
  return { server, port };
}
