import {
  Consistency as PbConsistency,
  type Entry as PbEntry,
  SharingServiceService,
  WatchResponse_Kind,
} from '@backplane/proto/sharing';
import type { Consistency } from '@backplane/replicated';
import { type Audiences, BackplaneError, type ServiceRegistration, service } from '@backplane/runtime';
import type { ChangeKind, Entry, EventPayload } from './engine';
import type { Sharing } from './sharing';

const toPb = (e: Omit<Entry, 'createRevision'> & { createRevision?: number }, withValue = true): PbEntry => ({
  key: e.key,
  value: withValue ? Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength) : Buffer.alloc(0),
  revision: e.revision,
  expiresAtMs: e.expiresAt,
  createRevision: e.createRevision ?? 0,
});

/**
 * A write's request id, when the client sent one: every try of one write (at any node, within two
 * minutes) is then one entry of the log, applied once, and each try answers with its result.
 */
function requestIdOf(req: { requestId?: string | undefined }): string | undefined {
  const id = req.requestId;
  if (id === undefined || id === '') return undefined;
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(id))
    throw BackplaneError.badParameter('request_id is 8-64 characters of A-Z a-z 0-9 _ -', {
      reason: 'BAD_REQUEST_ID',
    });
  return id;
}

/** The consistency a read asks for (unspecified: linearizable). */
function consistencyOf(c: PbConsistency | undefined): Consistency {
  if (c === PbConsistency.CONSISTENCY_SERIALIZABLE) return 'serializable';
  if (
    c === undefined ||
    c === PbConsistency.CONSISTENCY_UNSPECIFIED ||
    c === PbConsistency.CONSISTENCY_LINEARIZABLE
  )
    return 'linearizable';
  throw BackplaneError.badParameter(`unknown consistency ${c}: LINEARIZABLE or SERIALIZABLE`);
}

const KINDS: Record<ChangeKind, WatchResponse_Kind> = {
  PUT: WatchResponse_Kind.KIND_PUT,
  DELETE: WatchResponse_Kind.KIND_DELETE,
  EXPIRE: WatchResponse_Kind.KIND_EXPIRE,
};

function payloadOf(p: { $case: 'text'; text: string } | { $case: 'data'; data: Buffer } | undefined) {
  if (!p) throw BackplaneError.badParameter('an event needs a payload (text or data)');
  return p;
}

/**
 * SharingService RPCs ↔ Sharing. With `audiences`, a caller outside the nodes' network (one that did not
 * dial this node's advertise host) learns the ring at the nodes' external addresses.
 */
export function sharingService(sharing: Sharing, audiences?: Audiences): ServiceRegistration {
  return service(SharingServiceService, {
    put: async (req) => ({
      revision: await sharing.put(req.key, req.value, req.ttlMs, requestIdOf(req)),
    }),
    get: async (req) => {
      const e = await sharing.get(req.key, consistencyOf(req.consistency));
      return e ? { found: true, entry: toPb(e) } : { found: false, entry: undefined };
    },
    remove: async (req) => {
      const revision = await sharing.remove(req.key, req.expectedRevision, requestIdOf(req));
      return { removed: revision !== undefined, revision: revision ?? 0 };
    },
    compareAndSet: async (req) => ({
      revision: await sharing.compareAndSet(
        req.key,
        req.expectedRevision,
        req.value,
        req.ttlMs,
        requestIdOf(req),
      ),
    }),
    list: async (req) => {
      const page = await sharing.list(
        req.prefix,
        req.pageSize,
        req.pageToken,
        consistencyOf(req.consistency),
      );
      return { entries: page.entries.map((e) => toPb(e, !req.keysOnly)), nextPageToken: page.nextPageToken };
    },
    watch: async (req, sink, ctx) => {
      for await (const item of sharing.watch(req.key, req.prefix, req.fromRevision, ctx.signal)) {
        if ('synced' in item) {
          await sink.send({ kind: WatchResponse_Kind.KIND_UNSPECIFIED, entry: undefined, synced: true });
          continue;
        }
        const c = item.change;
        await sink.send({
          kind: KINDS[c.kind],
          entry: toPb({
            key: c.key,
            value: c.value ?? new Uint8Array(0),
            revision: c.revision,
            expiresAt: c.expiresAt,
            createRevision: c.createRevision,
          }),
          synced: false,
        });
      }
    },
    commit: async (req) => {
      const r = await sharing.commit(
        {
          reads: req.reads.map((r) => ({ key: r.key, revision: r.revision })),
          puts: req.puts.map((p) => ({ key: p.key, value: p.value, ttlMs: p.ttlMs })),
          removes: req.removes,
        },
        requestIdOf(req),
      );
      return r.committed
        ? { committed: true, revision: r.revision, conflicts: [] }
        : {
            committed: false,
            revision: 0,
            conflicts: r.conflicts.map((c) => ({
              key: c.key,
              expectedRevision: c.expected,
              actualRevision: c.actual,
            })),
          };
    },
    publish: async (req) => {
      const sequence = await sharing.publish({
        topic: req.topic,
        payload: payloadOf(req.payload),
      } as EventPayload);
      return { sequence: sequence ?? 0 };
    },
    subscribe: async (req, sink, ctx) => {
      const durable = req.durableName
        ? { name: req.durableName, fromSequence: req.fromSequence, fromTimeMs: req.fromTimeMs }
        : undefined;
      const sub = await sharing.subscribe(req.topic, ctx.signal, durable);
      await sink.send({ message: { $case: 'subscriptionId', subscriptionId: sub.id } });
      for await (const ev of sub.events) {
        const payload =
          ev.payload.$case === 'text'
            ? ev.payload
            : {
                $case: 'data' as const,
                data: Buffer.from(
                  ev.payload.data.buffer,
                  ev.payload.data.byteOffset,
                  ev.payload.data.byteLength,
                ),
              };
        const stored =
          'sequence' in ev
            ? { sequence: ev.sequence, redelivered: ev.redelivered }
            : { sequence: 0, redelivered: false };
        await sink.send({ message: { $case: 'event', event: { topic: ev.topic, payload, ...stored } } });
      }
    },
    unsubscribe: async (req) => {
      sharing.unsubscribe(req.subscriptionId);
      return {};
    },
    ack: async (req) => {
      await sharing.ack(req.subscriptionId, req.sequence);
      return {};
    },
    nodes: async (_req, ctx) => ({
      nodes: (await sharing.ring.nodes()).map((n) => ({
        id: n.id,
        address: n.external && audiences?.isExternal(ctx) ? n.external : n.address,
      })),
      selfId: sharing.ring.self.id,
      engine: sharing.properties.kind,
    }),
  });
}
