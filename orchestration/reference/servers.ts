/**
 * Reference DialplanService, UserService and MediaService for the embedded default
 * and for tests: real gRPC servers on loopback with the platform's contracts. The
 * dialplan asks the user service with FindUserByContact, as the platform's does.
 *
 * Reference routes (destination number -> plan), documented in the README:
 *   905551112233 START_AI_CONVERSATION (the demo number)
 *   905550000002 BRIDGE_CALL   905550000003 ECHO_TEST   905550000004 PLAY_STATIC_ANNOUNCEMENT
 *   905550000005 ENQUEUE_CALL  905550000000 UNSPECIFIED 905550000009 maintenance mode
 *   905550000008 blocks anonymous callers   905550000408 answers after 2 s (deadline tests)
 *   905550001500 answers after 1.5 s (slow but healthy: within the default setup budget)
 *   anything else: NOT_FOUND
 */
import * as grpc from "@grpc/grpc-js";
import {
  ActionType,
  DialplanServiceService,
  type ResolveDialplanResponse,
} from "../../proto/gen/sentiric/dialplan/v1/dialplan.ts";
import { MediaServiceService } from "../../proto/gen/sentiric/media/v1/media.ts";
import { type User, UserServiceClient, UserServiceService } from "../../proto/gen/sentiric/user/v1/user.ts";

const TENANT = "sentiric_demo";

const USERS: readonly User[] = [{
  id: "user-demo-1",
  name: "Demo Caller",
  tenantId: TENANT,
  userType: "caller",
  contacts: [{
    id: 1,
    userId: "user-demo-1",
    contactType: "phone",
    contactValue: "905321234567",
    isPrimary: true,
  }],
  preferredLanguageCode: "tr",
}];

const ROUTES: Readonly<
  Record<
    string,
    { type: ActionType; action: string; maintenance?: boolean; blockAnonymous?: boolean; delayMs?: number }
  >
> = {
  "905551112233": { type: ActionType.ACTION_TYPE_START_AI_CONVERSATION, action: "START_AI_CONVERSATION" },
  "905550000002": { type: ActionType.ACTION_TYPE_BRIDGE_CALL, action: "BRIDGE_CALL" },
  "905550000003": { type: ActionType.ACTION_TYPE_ECHO_TEST, action: "ECHO_TEST" },
  "905550000004": {
    type: ActionType.ACTION_TYPE_PLAY_STATIC_ANNOUNCEMENT,
    action: "PLAY_STATIC_ANNOUNCEMENT",
  },
  "905550000005": { type: ActionType.ACTION_TYPE_ENQUEUE_CALL, action: "ENQUEUE_CALL" },
  "905550000000": { type: ActionType.ACTION_TYPE_UNSPECIFIED, action: "" },
  "905550000009": {
    type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
    action: "START_AI_CONVERSATION",
    maintenance: true,
  },
  "905550000008": {
    type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
    action: "START_AI_CONVERSATION",
    blockAnonymous: true,
  },
  "905550001500": {
    type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
    action: "START_AI_CONVERSATION",
    delayMs: 1500,
  },
  "905550000408": {
    type: ActionType.ACTION_TYPE_START_AI_CONVERSATION,
    action: "START_AI_CONVERSATION",
    delayMs: 2000,
  },
};

function notFound(details: string): grpc.ServiceError {
  return Object.assign(new Error(details), {
    code: grpc.status.NOT_FOUND,
    details,
    metadata: new grpc.Metadata(),
  });
}

/** A pool of even RTP ports, as a media service hands them out. */
export class PortPool {
  readonly #free: number[] = [];
  readonly allocated = new Map<number, string>();
  constructor(first = 10000, last = 59998) {
    for (let p = first; p <= last; p += 2) this.#free.push(p);
  }
  allocate(callId: string): number | undefined {
    const port = this.#free.shift();
    if (port !== undefined) this.allocated.set(port, callId);
    return port;
  }
  release(port: number): boolean {
    if (!this.allocated.delete(port)) return false;
    this.#free.push(port);
    return true;
  }
}

export interface ReferenceServers extends AsyncDisposable {
  readonly dialplanUrl: string;
  readonly userUrl: string;
  readonly mediaUrl: string;
  readonly ports: PortPool;
  /**
   * Trace ids seen in `x-trace-id` metadata, by method: the most recent
   * `TRACE_IDS_KEPT`, so a long-running embedded instance does not grow without bound.
   */
  readonly traceIds: { method: string; traceId: string; traceparent: string }[];
  /** When set, AllocatePort fails with this status (tests of the failure table). */
  mediaFailure: grpc.status | undefined;
  /** When set, AllocatePort allocates at once but answers this many ms later (a slow media service). */
  mediaDelayMs: number | undefined;
  close(): Promise<void>;
}

/** How many (method, trace id) pairs the reference servers remember. */
export const TRACE_IDS_KEPT = 1000;

async function bind(server: grpc.Server, host: string, port = 0): Promise<string> {
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${host}:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (e, p) => (e ? reject(e) : resolve(p)),
    )
  );
  return `${host}:${bound}`;
}

/**
 * Starts the three reference services on loopback, each on a free port, or on the
 * ports of `at` (the same services started again, as after a deploy).
 */
export async function startReferenceServers(
  host = "127.0.0.1",
  ports = new PortPool(),
  at?: { readonly dialplanUrl: string; readonly mediaUrl: string; readonly userUrl: string },
): Promise<ReferenceServers> {
  const portOf = (url: string | undefined) => Number(url?.slice(url.lastIndexOf(":") + 1) ?? 0);
  const traceIds: { method: string; traceId: string; traceparent: string }[] = [];
  const seen = (method: string, md: grpc.Metadata) => {
    if (traceIds.length >= TRACE_IDS_KEPT) traceIds.splice(0, traceIds.length - TRACE_IDS_KEPT + 1);
    traceIds.push({
      method,
      traceId: String(md.get("x-trace-id")[0] ?? ""),
      traceparent: String(md.get("traceparent")[0] ?? ""),
    });
  };

  const userServer = new grpc.Server();
  userServer.addService(UserServiceService, {
    findUserByContact(
      call: grpc.ServerUnaryCall<{ contactValue: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) {
      seen("FindUserByContact", call.metadata);
      const user = USERS.find((u) => u.contacts.some((c) => c.contactValue === call.request.contactValue));
      if (user === undefined) callback(notFound(`no user with contact ${call.request.contactValue}`));
      else callback(null, { user });
    },
  });
  const userUrl = await bind(userServer, host, portOf(at?.userUrl));
  const users = new UserServiceClient(userUrl, grpc.credentials.createInsecure());

  const dialplanServer = new grpc.Server();
  dialplanServer.addService(DialplanServiceService, {
    resolveDialplan(
      call: grpc.ServerUnaryCall<{ callerContactValue: string; destinationNumber: string }, unknown>,
      callback: grpc.sendUnaryData<ResolveDialplanResponse>,
    ) {
      seen("ResolveDialplan", call.metadata);
      const { callerContactValue, destinationNumber } = call.request;
      const route = ROUTES[destinationNumber];
      if (route === undefined) {
        callback(notFound(`no inbound route for ${destinationNumber}`));
        return;
      }
      const md = new grpc.Metadata();
      md.set("x-trace-id", String(call.metadata.get("x-trace-id")[0] ?? ""));
      users.findUserByContact(
        { contactType: "phone", contactValue: callerContactValue },
        md,
        (error, found) => {
          const user = error === null ? found.user : undefined;
          const contact = user?.contacts.find((c) => c.contactValue === callerContactValue);
          const response: ResolveDialplanResponse = {
            dialplanId: `dp_${route.action.toLowerCase() || "unspecified"}`,
            tenantId: TENANT,
            action: { action: route.action, type: route.type, actionData: { service: "sentiric-agent" } },
            matchedUser: user,
            matchedContact: contact,
            inboundRoute: {
              phoneNumber: destinationNumber,
              tenantId: TENANT,
              activeDialplanId: `dp_${route.action.toLowerCase() || "unspecified"}`,
              offHoursDialplanId: undefined,
              failsafeDialplanId: undefined,
              isMaintenanceMode: route.maintenance ?? false,
              defaultLanguageCode: "tr",
              scheduleId: undefined,
              blockAnonymous: route.blockAnonymous ?? false,
            },
          };
          if (route.delayMs === undefined) callback(null, response);
          else setTimeout(() => callback(null, response), route.delayMs);
        },
      );
    },
  });
  const dialplanUrl = await bind(dialplanServer, host, portOf(at?.dialplanUrl));

  const servers: ReferenceServers = {
    dialplanUrl,
    userUrl,
    mediaUrl: "",
    ports,
    traceIds,
    mediaFailure: undefined,
    mediaDelayMs: undefined,
    close() {
      // forceShutdown cuts every connection at once, without waiting for clients to
      // leave (and without the GOAWAY exchange that can abort Deno: see main.ts).
      for (const server of [userServer, dialplanServer, mediaServer]) server.forceShutdown();
      users.close();
      return Promise.resolve();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };

  const mediaServer = new grpc.Server();
  mediaServer.addService(MediaServiceService, {
    allocatePort(
      call: grpc.ServerUnaryCall<{ callId: string }, unknown>,
      callback: grpc.sendUnaryData<{ rtpPort: number }>,
    ) {
      seen("AllocatePort", call.metadata);
      if (servers.mediaFailure !== undefined) {
        const details = "media failure injected";
        callback(
          Object.assign(new Error(details), {
            code: servers.mediaFailure,
            details,
            metadata: new grpc.Metadata(),
          }),
        );
        return;
      }
      const port = ports.allocate(call.request.callId);
      if (port === undefined) {
        const details = "no free RTP port";
        callback(
          Object.assign(new Error(details), {
            code: grpc.status.RESOURCE_EXHAUSTED,
            details,
            metadata: new grpc.Metadata(),
          }),
        );
      } else if (servers.mediaDelayMs !== undefined) {
        setTimeout(() => callback(null, { rtpPort: port }), servers.mediaDelayMs);
      } else callback(null, { rtpPort: port });
    },
    releasePort(
      call: grpc.ServerUnaryCall<{ rtpPort: number }, unknown>,
      callback: grpc.sendUnaryData<{ success: boolean }>,
    ) {
      seen("ReleasePort", call.metadata);
      callback(null, { success: ports.release(call.request.rtpPort) });
    },
  });
  (servers as { mediaUrl: string }).mediaUrl = await bind(mediaServer, host, portOf(at?.mediaUrl));
  return servers;
}
