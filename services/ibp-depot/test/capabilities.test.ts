import { type CapSet, CapType, type DepotServiceClient, ManageCommand } from '@backplane/proto/ibp';
import { unary } from '@backplane/runtime';
import { tempDir } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { type RunningDepot, startDepot } from '../src';
import { allocate, depotClient, readVia, storeVia } from './grpc';

type Kind = 'READ' | 'WRITE' | 'MANAGE';

/** Every RPC that takes a capability, with the kind it needs, called with `cap` in that place. */
function calls(client: DepotServiceClient, good: CapSet, port: number) {
  const manage = (cap: string) =>
    unary(client.manage.bind(client), {
      manageCap: cap,
      command: ManageCommand.MANAGE_COMMAND_PROBE,
      capType: CapType.CAP_TYPE_READ,
      size: 0,
    });
  return [
    { rpc: 'Store', needs: 'WRITE' as Kind, run: (cap: string) => storeVia(client, cap, Buffer.from('x')) },
    {
      rpc: 'StoreSmall',
      needs: 'WRITE' as Kind,
      run: (cap: string) => unary(client.storeSmall.bind(client), { writeCap: cap, data: Buffer.from('x') }),
    },
    { rpc: 'Read', needs: 'READ' as Kind, run: (cap: string) => readVia(client, cap) },
    {
      rpc: 'ReadSmall',
      needs: 'READ' as Kind,
      run: (cap: string) => unary(client.readSmall.bind(client), { readCap: cap, offset: 0, size: -1 }),
    },
    {
      rpc: 'Copy (source)',
      needs: 'READ' as Kind,
      run: (cap: string) =>
        unary(client.copy.bind(client), {
          sourceReadCap: cap,
          targetWriteCap: good.writeCap,
          offset: 0,
          size: 1,
        }),
    },
    {
      rpc: 'Copy (target)',
      needs: 'WRITE' as Kind,
      run: (cap: string) =>
        unary(client.copy.bind(client), {
          sourceReadCap: good.readCap,
          targetWriteCap: cap,
          offset: 0,
          size: 1,
        }),
    },
    {
      rpc: 'Deliver',
      needs: 'READ' as Kind,
      run: (cap: string) =>
        unary(client.deliver.bind(client), { readCap: cap, host: '127.0.0.1', port, offset: 0, size: 1 }),
    },
    {
      rpc: 'RemoteStore',
      needs: 'WRITE' as Kind,
      run: (cap: string) =>
        unary(client.remoteStore.bind(client), { writeCap: cap, host: '127.0.0.1', port, size: 1 }),
    },
    { rpc: 'Manage PROBE', needs: 'MANAGE' as Kind, run: manage },
    {
      rpc: 'Derive',
      needs: 'READ' as Kind,
      run: (cap: string) =>
        unary(client.derive.bind(client), { readCap: cap, offset: 0, length: 1, duration: 0 }),
    },
    {
      rpc: 'Revoke',
      needs: 'MANAGE' as Kind,
      run: (cap: string) => unary(client.revoke.bind(client), { manageCap: cap, derivedCap: good.readCap }),
    },
    {
      rpc: 'Verify',
      needs: 'READ' as Kind,
      run: (cap: string) => unary(client.verify.bind(client), { readCap: cap }),
    },
  ];
}

describe('capability checks, RPC by RPC', () => {
  const dir = tempDir('ibp-caps-');
  let running: RunningDepot;
  let client: DepotServiceClient;
  let good: CapSet;
  let other: CapSet;

  beforeAll(async () => {
    running = await startDepot({ port: 0, dataDir: dir.path, stableSizeMb: 16, volatileSizeMb: 16 });
    client = depotClient(running.address);
    good = await allocate(client, 1024);
    await storeVia(client, good.writeCap, Buffer.from('kept'));
    other = await allocate(client, 1024);
  });
  afterAll(async () => {
    client.close();
    await running.close();
    dir.remove();
  });

  const capOf = (set: CapSet, kind: Kind) =>
    kind === 'READ' ? set.readCap : kind === 'WRITE' ? set.writeCap : set.manageCap;
  const stillKept = async () => expect((await readVia(client, good.readCap)).toString()).toBe('kept');

  it('refuses a capability of the wrong kind with FAILED_PRECONDITION (IBP_E_WRONG_CAP_TYPE)', async () => {
    for (const c of calls(client, good, 9)) {
      for (const kind of (['READ', 'WRITE', 'MANAGE'] as Kind[]).filter((k) => k !== c.needs)) {
        await expect([c.rpc, kind, await c.run(capOf(good, kind)).catch((e) => e.code)]).toEqual([
          c.rpc,
          kind,
          status.FAILED_PRECONDITION,
        ]);
      }
    }
    await stillKept();
  });

  it('refuses a forged key (right id, right kind) with NOT_FOUND, as it does an unknown id', async () => {
    for (const c of calls(client, good, 9)) {
      const real = capOf(good, c.needs);
      // the same shape, another key: a well-formed capability the depot never issued
      const forged = real.replace(/#([^/]+)\//, (_m, key: string) => `#${'A'.repeat(key.length)}/`);
      const unknown = real.replace(/\/([^/#]+)#/, (_m, id: string) => `/${'B'.repeat(id.length)}#`);
      for (const cap of [forged, unknown]) {
        await expect([c.rpc, await c.run(cap).catch((e) => e.code)]).toEqual([c.rpc, status.NOT_FOUND]);
      }
    }
    await stillKept();
  });

  it("refuses another area's capability of the right kind for nothing but that area", async () => {
    // the other area's write capability stores into the other area, never into this one
    await storeVia(client, other.writeCap, Buffer.from('other'));
    expect((await readVia(client, other.readCap)).toString()).toMatch(/other$/);
    await stillKept();
  });

  it('refuses a malformed capability with INVALID_ARGUMENT', async () => {
    for (const c of calls(client, good, 9)) {
      for (const cap of ['', 'not a capability', 'ibp://127.0.0.1:1/', `${capOf(good, c.needs)}/extra`]) {
        await expect([c.rpc, cap, await c.run(cap).catch((e) => e.code)]).toEqual([
          c.rpc,
          cap,
          status.INVALID_ARGUMENT,
        ]);
      }
    }
    await stillKept();
  });
});
