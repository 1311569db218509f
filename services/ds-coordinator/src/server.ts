import {
  type AttachRequest,
  type AttachResponse,
  CoordinatorServiceService,
  type HandoffRequest,
} from '@backplane/proto/ds';
import { type Audiences, BackplaneError, type ServiceRegistration, service } from '@backplane/runtime';
import type { Coordinator } from './coordinator';
import type { ClientRecord, NodeSession } from './node-session';
import { LIMITS } from './urls';

/** Unread bytes a node may return per stream in one handoff (socket buffers plus its own queue). */
const MAX_UNREAD_BYTES = 64 * 1024 * 1024;
/** How long a handoff waits for the target to dial its data connections, when the call has no deadline. */
const DEFAULT_HANDOFF_TIMEOUT_MS = 10_000;

/** The next request, or the call's abort reason (cancelled, deadline, server shutting down). */
function next<T>(it: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

async function first<T>(it: AsyncIterator<T>, what: string, signal: AbortSignal): Promise<T> {
  const nextValue = await next(it, signal);
  if (nextValue.done) throw BackplaneError.badParameter(`the stream ended before its ${what}`);
  return nextValue.value;
}

/** The longest setTimeout Node honours (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function checkMessage(message: Buffer | undefined): Buffer | undefined {
  if (message && message.length > LIMITS.maxMessageBytes) {
    throw BackplaneError.badParameter(
      `handoff message of ${message.length} bytes; at most ${LIMITS.maxMessageBytes}`,
    );
  }
  return message;
}

/** gRPC ↔ Coordinator. */
export function coordinatorService(coordinator: Coordinator, audiences?: Audiences): ServiceRegistration {
  return service(CoordinatorServiceService, {
    async attach(requests, sink, ctx) {
      const it = requests[Symbol.asyncIterator]();
      const hello: AttachRequest = await first(it, 'Attach', ctx.signal);
      if (hello.kind?.$case !== 'attach') {
        throw BackplaneError.badParameter('the first message of an Attach stream must be Attach');
      }
      let session: NodeSession | undefined;
      session = coordinator.attach(
        hello.kind.attach.name,
        hello.kind.attach.node,
        (m: AttachResponse) => sink.send(m),
        (address) => audiences?.addressFor(ctx, address) ?? address,
      );
      const attached = session;
      const onAbort = () => coordinator.sessionFailed(attached);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        for (;;) {
          const request = await next(it, ctx.signal);
          if (request.done) break;
          const kind = request.value.kind;
          if (kind?.$case === 'detach') {
            await coordinator.detach(attached, kind.detach.bindingReset);
            return;
          }
          if (kind?.$case === 'streamClosed') {
            coordinator.streamClosed(attached, kind.streamClosed.streamId, kind.streamClosed.writeOnly);
          } else {
            throw BackplaneError.badParameter('an attached session accepts only StreamClosed and Detach');
          }
        }
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        coordinator.sessionFailed(attached);
        session = undefined;
      }
    },

    async handoff(requests, sink, ctx) {
      const it = requests[Symbol.asyncIterator]();
      const hello: HandoffRequest = await first(it, 'HandoffStart', ctx.signal);
      if (hello.kind?.$case !== 'start') {
        throw BackplaneError.badParameter('the first message of a Handoff stream must be HandoffStart');
      }
      const { session, clientUrl, targetUrl, reason, timeoutMs: requested } = hello.kind.start;
      const startedAt = Date.now();
      const from = coordinator.session(session);
      const handoff = coordinator.beginHandoff(from, clientUrl, targetUrl);
      const ids = new Set(handoff.streams.map((s) => s.id));
      const unread = new Map<string, Buffer[]>();
      const sizes = new Map<string, number>();
      let message: Buffer | undefined;
      const writeClosed = new Set<string>();
      let failure: unknown;
      try {
        await sink.send({ kind: { $case: 'started', started: { streamIds: [...ids] } } });
        for (;;) {
          const request = await next(it, ctx.signal);
          if (request.done) break;
          const kind = request.value.kind;
          if (kind?.$case === 'unread') {
            const { streamId, data } = kind.unread;
            if (!ids.has(streamId))
              throw BackplaneError.badParameter(`stream ${streamId} is not in this handoff`);
            const size = (sizes.get(streamId) ?? 0) + data.length;
            if (size > MAX_UNREAD_BYTES) {
              throw BackplaneError.of(
                'RESOURCE_EXHAUSTED',
                `more than ${MAX_UNREAD_BYTES} unread bytes for stream ${streamId}`,
              );
            }
            sizes.set(streamId, size);
            unread.set(streamId, [...(unread.get(streamId) ?? []), data]);
          } else if (kind?.$case === 'finish') {
            message = checkMessage(kind.finish.message);
            for (const id of kind.finish.writeClosedStreamIds) writeClosed.add(id);
            break;
          } else {
            throw BackplaneError.badParameter('a Handoff stream carries UnreadBytes, then HandoffFinish');
          }
        }
      } catch (err) {
        // the streams are already released: they go on to the target with what arrived, and the caller
        // learns what went wrong
        failure = err;
      }
      // the caller's bound for the target's dials (0: none), else the call's deadline, else the default
      const timeoutMs =
        requested === 0
          ? 0
          : requested !== undefined
            ? Math.min(MAX_TIMER_MS, Math.max(1, startedAt + requested - Date.now()))
            : ctx.deadline
              ? Math.max(1, ctx.deadline - Date.now())
              : DEFAULT_HANDOFF_TIMEOUT_MS;
      const target = await coordinator.completeHandoff(
        handoff,
        unread,
        message,
        writeClosed,
        timeoutMs,
        reason,
      );
      if (failure) throw failure;
      await sink.send({ kind: { $case: 'completed', completed: { targetUrl: target } } });
    },

    async listTargets(request) {
      const session = coordinator.session(request.session);
      return {
        targets: coordinator.targets(session).map((n) => ({ nodeUrl: n.url, clients: n.clients.size })),
      };
    },

    async status() {
      return {
        services: coordinator.serviceNames.map((name) => ({
          name,
          address: coordinator.serviceAddress(name),
          pendingStreams: coordinator.pendingStreams(name),
        })),
        nodes: coordinator.nodes().map((n) => {
          const bytes = coordinator.liveBytes(n);
          const latency = n.handoffLatency();
          return {
            nodeUrl: n.url,
            name: n.name,
            node: n.node,
            clients: n.clients.size,
            streams: n.streamCount(),
            bytesToNode: bytes.toNode,
            bytesFromNode: bytes.fromNode,
            handoffsOut: n.counters.handoffsOut,
            handoffsIn: n.counters.handoffsIn,
            handoffP50Ms: latency.p50,
            handoffP99Ms: latency.p99,
            attachedAtMs: n.attachedAt,
          };
        }),
        dataAddress: coordinator.dataAddress,
        bindings: coordinator.bindingCount,
      };
    },

    async listClients(request) {
      return {
        clients: coordinator
          .clientList()
          .filter(
            (c) =>
              (!request.name || c.name === request.name) &&
              (!request.nodeUrl || c.nodeUrl === request.nodeUrl),
          )
          .map((c) => ({ clientUrl: c.url, name: c.name, nodeUrl: c.nodeUrl, streams: c.streams })),
      };
    },

    async drain(request, sink, ctx) {
      const node = coordinator.node(request.nodeUrl);
      const perSecond = request.perSecond || 20;
      // while it runs, new clients go elsewhere; clients that reach the node meanwhile (bound to it) go too
      node.draining++;
      const tried = new Set<ClientRecord>();
      try {
        for (;;) {
          if (ctx.signal.aborted || node.closed) return;
          const client = [...node.clients].find((c) => !tried.has(c));
          if (!client) return;
          tried.add(client);
          try {
            const target = await coordinator.release(node, client, DEFAULT_HANDOFF_TIMEOUT_MS);
            await sink.send({ clientUrl: client.url, targetUrl: target, error: '' });
          } catch (err) {
            await sink.send({
              clientUrl: client.url,
              targetUrl: '',
              error: BackplaneError.from(err).message,
            });
            if (err instanceof BackplaneError && err.reason === 'NO_SUCCESS') return;
          }
          await new Promise((r) => setTimeout(r, 1000 / perSecond));
        }
      } finally {
        node.draining--;
      }
    },
  });
}
