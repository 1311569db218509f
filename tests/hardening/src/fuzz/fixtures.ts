import { createConnection, type Socket } from 'node:net';
import { DsAdmin, DsService } from '@backplane/ds-client';
import { IbpClient } from '@backplane/ibp-client';
import { NamingClient } from '@backplane/naming-client';
import { SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { TupleSpaceClient, tuple } from '@backplane/tuplespace-client';
import { echoNode } from '../codes';
import { type ServiceName, type ServiceProcess, TS_ADMIN } from '../services';
import type { Corpus } from './messages';

/**
 * Data a run writes before it attacks a service and checks afterwards, and the valid values it lends
 * the fuzzer. The data the check reads is guarded (owner secrets, a keeper-only space, capabilities the
 * fuzzer never sees); the corpus holds values of sacrificial objects the fuzzer may legitimately change.
 */
export interface Fixture {
  corpus: Corpus;
  /** Problems found (empty when every kept object is intact). */
  verify(): Promise<string[]>;
  close(): Promise<void>;
}

const KEPT = 24;

async function nameServerFixture(p: ServiceProcess): Promise<Fixture> {
  const client = new NamingClient({ nameServer: p.address });
  const kept: Array<{ name: string; port: number }> = [];
  for (let i = 0; i < KEPT; i += 1) {
    const name = `kept-${i}`;
    await client.bind(name, { host: '10.0.0.1', port: 1000 + i, metadata: {} }, { types: ['kept.v1.Kept'] });
    kept.push({ name, port: 1000 + i });
  }
  await client.createScope('fuzz');
  const bait = await client.bind('bait', { host: '10.0.0.2', port: 1, metadata: {} }, { scope: 'fuzz' });
  const corpus: Corpus = new Map([
    ['scope', ['', 'fuzz', 'kept']],
    ['name', ['bait', 'kept-0', 'other']],
    ['address_id', [bait.addressId]],
    ['owner_secret', [bait.ownerSecret]],
    ['types', ['kept.v1.Kept', 'backplane.naming.v1.NamingService']],
    ['expected_type', ['kept.v1.Kept']],
    ['parent', ['', 'fuzz']],
    ['prefix', ['kept', 'b']],
  ]);
  return {
    corpus,
    async verify() {
      const problems: string[] = [];
      for (const k of kept) {
        const r = await client.resolve(k.name).catch((e: Error) => e);
        if (r instanceof Error) problems.push(`${k.name}: ${r.message}`);
        else if (r.binding?.location?.port !== k.port)
          problems.push(`${k.name}: port ${r.binding?.location?.port}`);
      }
      return problems;
    },
    async close() {
      client.close();
    },
  };
}

async function depotFixture(p: ServiceProcess): Promise<Fixture> {
  const client = new IbpClient({ depot: p.address });
  const kept: Array<{ cap: string; data: Buffer }> = [];
  for (let i = 0; i < KEPT; i += 1) {
    const data = Buffer.alloc(4096 + i * 1000, i);
    const caps = await client.allocate(data.length, { reliability: 'STABLE', data });
    kept.push({ cap: caps.readCap, data });
  }
  const bait = await client.allocate(65_536, { reliability: 'VOLATILE' });
  const fifo = await client.allocate(4096, { type: 'FIFO' });
  const corpus: Corpus = new Map([
    ['read_cap', [bait.readCap, fifo.readCap]],
    ['source_read_cap', [bait.readCap]],
    ['write_cap', [bait.writeCap, fifo.writeCap]],
    ['target_write_cap', [fifo.writeCap]],
    ['manage_cap', [bait.manageCap, fifo.manageCap]],
    ['derived_cap', [bait.readCap]],
    ['host', ['127.0.0.1', 'localhost', '::1', '10.0.0.1']],
  ]);
  return {
    corpus,
    async verify() {
      const problems: string[] = [];
      for (const [i, k] of kept.entries()) {
        const got = await client.read(k.cap).catch((e: Error) => e);
        if (got instanceof Error) problems.push(`allocation ${i}: ${got.message}`);
        else if (!got.equals(k.data)) problems.push(`allocation ${i}: ${got.length} bytes differ`);
      }
      return problems;
    },
    async close() {
      client.close();
    },
  };
}

async function tupleSpaceFixture(p: ServiceProcess): Promise<Fixture> {
  const admin = new TupleSpaceClient(p.address, TS_ADMIN);
  await admin.putUser('keeper', 'keeper-password');
  await admin.createSpace('kept', { acl: [{ principal: 'keeper', permissions: ['READ', 'WRITE'] }] });
  await admin.createSpace('fuzz', { acl: [{ principal: '*', permissions: ['READ', 'WRITE'] }] });
  const keeper = new TupleSpaceClient(p.address, { user: 'keeper', password: 'keeper-password' });
  const ids: number[] = [];
  for (let i = 0; i < KEPT; i += 1)
    ids.push(await keeper.space('kept').write(tuple('kept', i, `value-${i}`)));
  await admin.space('fuzz').write(tuple('bait', 1));
  const txn = await keeper.begin({ idleTimeoutMs: 600_000 });
  const corpus: Corpus = new Map([
    ['space', ['fuzz', 'kept', 'missing']],
    ['txn_id', [txn.id]],
    ['command', ['WRITE', 'TAKE', 'READ', 'COUNT', 'SCAN', 'DELETE']],
    ['name', ['keeper', 'admin']],
    ['principal', ['*', 'keeper', '@admins']],
    ['factory', ['timestamping', 'logging', 'missing']],
    ['handler', ['timestamping', 'missing']],
    ['string_value', ['kept', 'bait']],
  ]);
  return {
    corpus,
    async verify() {
      const problems: string[] = [];
      const space = keeper.space('kept');
      for (const [i, id] of ids.entries()) {
        const r = await space.readById(id).catch((e: Error) => e);
        if (r instanceof Error) problems.push(`tuple ${i}: ${r.message}`);
        else if (!r) problems.push(`tuple ${i} (id ${id}) is gone`);
      }
      return problems;
    },
    async close() {
      await txn.abort().catch(() => undefined);
      admin.close();
      keeper.close();
    },
  };
}

async function sharingFixture(p: ServiceProcess): Promise<Fixture> {
  const connection = new SharingConnection(p.address);
  const props = new SharedProperties(connection);
  const kept: Array<{ key: string; revision: number; value: string }> = [];
  for (let i = 0; i < KEPT; i += 1) {
    const key = `kept/${i}/${Math.random().toString(36).slice(2)}`;
    kept.push({ key, value: `value-${i}`, revision: await props.put(key, `value-${i}`) });
  }
  await props.put('fuzz/a', 'bait');
  const corpus: Corpus = new Map([
    ['key', ['fuzz/a', 'fuzz/b', 'kept']],
    ['prefix', ['fuzz/', 'kept/', '']],
    ['topic', ['fuzz', 'fuzz.a', 'fuzz.*', 'fuzz.>']],
  ]);
  return {
    corpus,
    async verify() {
      const problems: string[] = [];
      for (const k of kept) {
        const got = await props.get(k.key).catch((e: Error) => e);
        if (got instanceof Error) problems.push(`${k.key}: ${got.message}`);
        else if (!got) problems.push(`${k.key} is gone`);
        else if (got.value.toString() !== k.value || got.revision !== k.revision)
          problems.push(`${k.key}: ${got.value.toString()} at revision ${got.revision}`);
      }
      return problems;
    },
    async close() {
      connection.close();
    },
  };
}

/**
 * An echo node and one connected client; the check sends bytes through and wants them back. The fuzzer
 * knows only a second (bait) node's URL: Drain needs no secret when the coordinator runs without a token,
 * and draining the kept node onto a node the fuzzer attached would move the client legitimately.
 */
async function dsFixture(p: ServiceProcess): Promise<Fixture> {
  const node = await DsService.create('default', null, { coordinator: p.address, node: 'kept-node' });
  const bait = await DsService.create('default', null, { coordinator: p.address, node: 'bait-node' });
  const serving = [echoNode(node), echoNode(bait)];
  const socket: Socket = createConnection({ host: '127.0.0.1', port: p.dsServicePort });
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  const echo = async (text: string): Promise<string> => {
    let got = '';
    const done = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no echo of ${text} within 5 s (got "${got}")`)), 5000);
      const onData = (d: Buffer) => {
        got += d.toString();
        if (got.length >= text.length) {
          clearTimeout(t);
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    socket.write(text);
    await done;
    return got;
  };
  if ((await echo('before')) !== 'before') throw new Error('ds fixture: no echo');
  const admin = new DsAdmin(p.address);
  const baitUrl = (await admin.status()).nodes.filter((n) => n.node === 'bait-node').map((n) => n.nodeUrl);
  const clientUrls = (await admin.clients({ name: 'default' })).map((c) => c.clientUrl);
  const corpus: Corpus = new Map([
    ['name', ['default', 'other']],
    ['node', ['bait-node', 'other-node']],
    ['node_url', baitUrl],
    ['client_url', clientUrls],
    ['target_url', baitUrl],
    ['from_node_url', baitUrl],
  ]);
  return {
    corpus,
    async verify() {
      if (socket.destroyed) return ['the client connection was closed'];
      const got = await echo('after-fuzz').catch((e: Error) => e);
      if (!(got instanceof Error) && got === 'after-fuzz') return [];
      const where = await admin.clients({ name: 'default' }).catch(() => []);
      return [
        `${got instanceof Error ? got.message : `echo was "${got}"`}; clients: ${JSON.stringify(where)}`,
      ];
    },
    async close() {
      socket.destroy();
      await node.close(true).catch(() => undefined);
      await bait.close(true).catch(() => undefined);
      await Promise.all(serving);
      admin.close();
    },
  };
}

export function prepareFixture(p: ServiceProcess): Promise<Fixture> {
  const make: Record<ServiceName, (p: ServiceProcess) => Promise<Fixture>> = {
    'name-server': nameServerFixture,
    'ibp-depot': depotFixture,
    tuplespace: tupleSpaceFixture,
    sharing: sharingFixture,
    'ds-coordinator': dsFixture,
  };
  return make[p.name](p);
}
