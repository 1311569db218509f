import {
  type BindRequest,
  type NamingServiceClient,
  WatchEventType,
  type WatchResponse,
} from '@backplane/proto/naming';
import { REASON_KEY, type RunningService, type Store, serverStream, unary } from '@backplane/runtime';
import { startTestService } from '@backplane/runtime/testing';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { status } from '@grpc/grpc-js';
import { Registry } from '../src/registry';
import { namingService } from '../src/server';
import { expectCode, memoryStore, namingClient, rawCall } from './helpers';

const loc = (port: number) => ({ host: '127.0.0.1', port, metadata: { zone: 'a' } });
const bindReq = (over: Partial<BindRequest> = {}): BindRequest => ({
  scope: '',
  name: 'svc',
  types: ['demo.v1.DemoService'],
  location: loc(9001),
  leaseTtlMs: 0,
  addressId: '',
  ownerSecret: '',
  ...over,
});

describe('NamingService over gRPC', () => {
  let store: Store;
  let registry: Registry;
  let running: RunningService;
  let client: NamingServiceClient;

  beforeAll(async () => {
    store = memoryStore();
    registry = await Registry.open({ store, self: 'in-test' });
    running = await startTestService({
      name: 'name-server',
      services: [namingService(registry)],
      onClose: [() => registry.close()],
    });
    client = namingClient(running.address);
  });

  afterAll(async () => {
    client.close();
    await running.close();
    await store.close();
  });

  const bind = (over: Partial<BindRequest> = {}) => unary(client.bind.bind(client), bindReq(over));

  it('binds, resolves with type check, and reports which scope answered', async () => {
    const res = await bind({ name: 'grpc/a' });
    expect(res.ownerSecret).not.toBe('');
    const r = await unary(client.resolve.bind(client), {
      scope: '',
      name: 'grpc/a',
      expectedType: 'demo.v1.DemoService',
    });
    expect(r.binding).toMatchObject({
      scope: 'default',
      name: 'grpc/a',
      location: loc(9001),
      types: ['demo.v1.DemoService'],
    });
    expect(r.nameServer).toBe('in-test');
    const err = await expectCode(
      unary(client.resolve.bind(client), { scope: '', name: 'grpc/a', expectedType: 'other.v1.Other' }),
      status.FAILED_PRECONDITION,
    );
    expect(err.reason).toBe('TYPE_MISMATCH');
    await expectCode(bind({ name: 'grpc/a' }), status.ALREADY_EXISTS);
  });

  it('answers bad input with the right code and a reason in trailing metadata', async () => {
    await expectCode(bind({ name: '' }), status.INVALID_ARGUMENT);
    await expectCode(bind({ name: 'n'.repeat(300) }), status.INVALID_ARGUMENT);
    await expectCode(bind({ leaseTtlMs: -1 }), status.INVALID_ARGUMENT);
    await expectCode(bind({ scope: 'unknown' }), status.NOT_FOUND);
    await expectCode(bind({ addressId: 'abc', ownerSecret: 's', location: loc(1) }), status.INVALID_ARGUMENT);
    await expectCode(bind({ location: undefined }), status.INVALID_ARGUMENT);
    const owned = await bind({ name: 'grpc/owned' });
    const wrong = await expectCode(
      unary(client.unbind.bind(client), { scope: '', name: 'grpc/owned', ownerSecret: 'not-the-secret' }),
      status.PERMISSION_DENIED,
    );
    expect(wrong.message).toContain('wrong owner secret');
    await expectCode(
      unary(client.keepAlive.bind(client), { addressId: owned.addressId, ownerSecret: 'nope' }),
      status.PERMISSION_DENIED,
    );
    await expectCode(
      unary(client.keepAlive.bind(client), { addressId: 'missing', ownerSecret: 'nope' }),
      status.NOT_FOUND,
    );
    await expectCode(
      unary(client.createScope.bind(client), { name: 'bad scope!', parent: '' }),
      status.INVALID_ARGUMENT,
    );
  });

  it('rejects a name that is not valid UTF-8', async () => {
    const raw = Buffer.from(
      new BinaryWriter()
        .uint32((2 << 3) | 2)
        .bytes(Buffer.from([0x66, 0xff, 0xfe, 0x6f]))
        .uint32((4 << 3) | 2)
        .fork()
        .uint32((1 << 3) | 2)
        .string('127.0.0.1')
        .uint32((2 << 3) | 0)
        .uint32(9000)
        .join()
        .finish(),
    );
    const err = await rawCall(client, 'Bind', raw);
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toContain('not valid UTF-8');
    expect(err?.metadata.get(REASON_KEY)).toEqual(['BAD_PARAMETER']);
    // and garbage that is not a protobuf message at all
    const garbage = await rawCall(client, 'Resolve', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff]));
    expect(garbage?.code).toBe(status.INVALID_ARGUMENT);
    // the server is fine afterwards
    await expect(bind({ name: 'grpc/after-garbage' })).resolves.toBeDefined();
  });

  it('lists with paging', async () => {
    for (const n of ['p/1', 'p/2', 'p/3']) await bind({ name: n });
    const first = await unary(client.list.bind(client), {
      scope: '',
      prefix: 'p/',
      pageSize: 2,
      pageToken: '',
      includeInherited: false,
    });
    expect(first.bindings.map((b) => b.name)).toEqual(['p/1', 'p/2']);
    const second = await unary(client.list.bind(client), {
      scope: '',
      prefix: 'p/',
      pageSize: 2,
      pageToken: first.nextPageToken,
      includeInherited: false,
    });
    expect(second.bindings.map((b) => b.name)).toEqual(['p/3']);
    expect(second.nextPageToken).toBe('');
  });

  it('streams the current state, SYNCED, then bind, migrate and unbind events', async () => {
    const existing = await bind({ name: 'w/existing' });
    const controller = new AbortController();
    const events: WatchResponse[] = [];
    const stream = serverStream(
      client.watch.bind(client),
      { scope: '', name: 'w/', prefix: true, includeInherited: false },
      { signal: controller.signal },
    );
    const consumed = (async () => {
      try {
        for await (const ev of stream) {
          events.push(ev);
          if (ev.type === WatchEventType.WATCH_EVENT_TYPE_SYNCED) {
            const added = await bind({ name: 'w/new' });
            await unary(client.migrate.bind(client), {
              addressId: existing.addressId,
              ownerSecret: existing.ownerSecret,
              location: loc(9100),
            });
            await unary(client.unbind.bind(client), {
              scope: '',
              name: 'w/new',
              ownerSecret: added.ownerSecret,
            });
          }
          if (ev.type === WatchEventType.WATCH_EVENT_TYPE_UNBOUND) controller.abort();
        }
      } catch {
        // cancelled
      }
    })();
    await consumed;
    expect(events.map((e) => [WatchEventType[e.type], e.binding?.name ?? ''])).toEqual([
      ['WATCH_EVENT_TYPE_EXISTING', 'w/existing'],
      ['WATCH_EVENT_TYPE_SYNCED', ''],
      ['WATCH_EVENT_TYPE_BOUND', 'w/new'],
      ['WATCH_EVENT_TYPE_MIGRATED', 'w/existing'],
      ['WATCH_EVENT_TYPE_UNBOUND', 'w/new'],
    ]);
    expect(events[3]?.binding?.location?.port).toBe(9100);
  });

  it('ends watch streams with UNAVAILABLE when the server shuts down', async () => {
    const other = await startTestService({ name: 'name-server', services: [namingService(registry)] });
    const c = namingClient(other.address);
    const stream = serverStream(c.watch.bind(c), {
      scope: '',
      name: '',
      prefix: true,
      includeInherited: false,
    });
    const seen: number[] = [];
    const done = (async () => {
      for await (const ev of stream) {
        seen.push(ev.type);
        if (ev.type === WatchEventType.WATCH_EVENT_TYPE_SYNCED) void other.close();
      }
    })();
    await expectCode(done, status.UNAVAILABLE);
    expect(seen).toContain(WatchEventType.WATCH_EVENT_TYPE_SYNCED);
    c.close();
  });
});
