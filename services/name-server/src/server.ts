import { NamingServiceService, WatchEventType } from '@backplane/proto/naming';
import {
  AsyncQueue,
  type Audiences,
  BackplaneError,
  type CallContext,
  type ServiceRegistration,
  service,
} from '@backplane/runtime';
import { bindingToProto, externalView, locationFromProto, scopeToProto } from './convert';
import type { BindingView, Change } from './records';
import type { Registry } from './registry';

/** A watcher that falls this far behind is cut off with RESOURCE_EXHAUSTED (it can watch again). */
export const MAX_WATCH_BACKLOG = 10_000;

const eventType: Record<Change['type'], WatchEventType> = {
  BOUND: WatchEventType.WATCH_EVENT_TYPE_BOUND,
  UNBOUND: WatchEventType.WATCH_EVENT_TYPE_UNBOUND,
  MIGRATED: WatchEventType.WATCH_EVENT_TYPE_MIGRATED,
  EXPIRED: WatchEventType.WATCH_EVENT_TYPE_EXPIRED,
};

/**
 * NamingService RPCs ↔ Registry. With `audiences`, a caller outside the services' network (one that did
 * not dial the name server's advertise host) sees every binding at its external address, where it has one.
 */
export function namingService(registry: Registry, audiences?: Audiences): ServiceRegistration {
  const viewFor = (ctx: CallContext): ((b: BindingView) => ReturnType<typeof bindingToProto>) =>
    audiences?.isExternal(ctx) ? (b) => bindingToProto(externalView(b)) : bindingToProto;
  return service(NamingServiceService, {
    bind: async (req) => {
      const wantsExisting = req.addressId !== '' || req.ownerSecret !== '';
      if (wantsExisting && (req.location || req.types.length > 0 || req.leaseTtlMs !== 0)) {
        throw BackplaneError.badParameter(
          'give either location, types and lease_ttl_ms (a new server) or address_id and owner_secret (one more name for an existing one), not both',
        );
      }
      const result = wantsExisting
        ? await registry.bind({
            scope: req.scope,
            name: req.name,
            addressId: req.addressId,
            ownerSecret: req.ownerSecret,
          })
        : await registry.bind({
            scope: req.scope,
            name: req.name,
            types: req.types,
            location: locationFromProto(req.location),
            leaseTtlMs: req.leaseTtlMs,
          });
      return {
        binding: bindingToProto(result.binding),
        addressId: result.addressId,
        ownerSecret: result.ownerSecret ?? '',
      };
    },

    unbind: async (req) => {
      await registry.unbind(req.scope, req.name, req.ownerSecret);
      return {};
    },

    keepAlive: async (req) => {
      const lease = registry.keepAlive(req.addressId, req.ownerSecret);
      return {
        leaseExpiresAt: lease.leaseExpiresAt === undefined ? undefined : new Date(lease.leaseExpiresAt),
        leaseTtlMs: lease.leaseTtlMs,
      };
    },

    migrate: async (req) => {
      const moved = await registry.migrate(req.addressId, req.ownerSecret, locationFromProto(req.location));
      return { bindings: moved.map(bindingToProto) };
    },

    resolve: async (req, ctx) => {
      const r = await registry.resolve(req.scope, req.name, req.expectedType, ctx);
      return { binding: viewFor(ctx)(r.binding), nameServer: r.nameServer };
    },

    list: async (req, ctx) => {
      const view = viewFor(ctx);
      const page = await registry.list(
        req.scope,
        req.prefix,
        req.pageSize,
        req.pageToken,
        req.includeInherited,
      );
      return { bindings: page.bindings.map(view), nextPageToken: page.nextPageToken };
    },

    watch: async (req, sink, ctx) => {
      const view = viewFor(ctx);
      const queue = new AsyncQueue<Change>(
        MAX_WATCH_BACKLOG,
        `watcher fell more than ${MAX_WATCH_BACKLOG} changes behind; watch again to resync`,
      );
      const sub = await registry.watch(
        { scope: req.scope, name: req.name, prefix: req.prefix, includeInherited: req.includeInherited },
        (change) => queue.push(change),
      );
      try {
        for (const b of sub.snapshot) {
          await sink.send({
            type: WatchEventType.WATCH_EVENT_TYPE_EXISTING,
            binding: view(b),
            revision: b.revision,
          });
        }
        await sink.send({
          type: WatchEventType.WATCH_EVENT_TYPE_SYNCED,
          binding: undefined,
          revision: sub.revision,
        });
        for await (const change of queue.drain(ctx.signal)) {
          if (change.revision <= sub.revision) continue;
          await sink.send({
            type: eventType[change.type],
            binding: view(change.binding),
            revision: change.revision,
          });
        }
      } finally {
        sub.unsubscribe();
      }
    },

    createScope: async (req) => ({ scope: scopeToProto(await registry.createScope(req.name, req.parent)) }),

    deleteScope: async (req) => {
      await registry.deleteScope(req.name, req.force);
      return {};
    },
  });
}
