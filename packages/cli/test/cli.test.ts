import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { DsService } from '@backplane/ds-client';
import { type RunningDsCoordinator, startDsCoordinator } from '@backplane/ds-coordinator';
import { freePort, type SpawnedProcess, spawnProcess, tempDir, waitFor } from '@backplane/runtime/testing';
import { SERVICES } from '../src/services';
import { type RunningUp, startUp } from '../src/testing';

const BIN = join(__dirname, '..', 'dist', 'bin.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('backplane up + backplane names', () => {
  const dir = tempDir();
  let up: RunningUp;
  let upProc: SpawnedProcess;
  let ns: string;
  let tsAddress: string;
  let sharingAddress: string;

  beforeAll(async () => {
    up = await startUp({ dataDir: dir.path, bin: BIN, readyTimeoutMs: 30_000 });
    upProc = up.process;
    ns = up.addresses['name-server'] as string;
    tsAddress = up.addresses.tuplespace as string;
    sharingAddress = up.addresses.sharing as string;
  }, 40_000);

  afterAll(async () => {
    await upProc.stop('SIGINT');
    dir.remove();
  });

  it('starts every service and prints what listens where', () => {
    for (const s of SERVICES)
      expect(upProc.output()).toMatch(new RegExp(`${s.name}\\s+127\\.0\\.0\\.1:\\d+`));
  });

  it('binds, resolves, lists and unbinds from the command line, with --json and exit codes', async () => {
    const bound = await cli([
      'names',
      'bind',
      'cli/demo',
      '127.0.0.1:9999',
      '--type',
      'demo.v1.Demo',
      '--ns',
      ns,
      '--json',
    ]);
    expect(bound.code).toBe(0);
    const { ownerSecret } = JSON.parse(bound.stdout) as { ownerSecret: string };
    const resolved = await cli([
      'names',
      'resolve',
      'cli/demo',
      '--type',
      'demo.v1.Demo',
      '--ns',
      ns,
      '--json',
    ]);
    expect(JSON.parse(resolved.stdout).binding.location).toEqual({
      host: '127.0.0.1',
      port: 9999,
      metadata: {},
    });
    const ls = await cli(['names', 'ls', 'cli/', '--ns', ns]);
    expect(ls.stdout).toMatch(/SCOPE\s+NAME\s+LOCATION/);
    expect(ls.stdout).toMatch(/default\s+cli\/demo\s+127\.0\.0\.1:9999/);
    // the services registered themselves
    const all = await cli(['names', 'ls', '--ns', ns, '--json']);
    const names = (JSON.parse(all.stdout) as Array<{ name: string }>).map((b) => b.name);
    for (const s of SERVICES) expect(names).toContain(s.name);
    const mismatch = await cli(['names', 'resolve', 'cli/demo', '--type', 'other.v1.Other', '--ns', ns]);
    expect(mismatch.code).toBe(10 + 9); // FAILED_PRECONDITION
    expect(mismatch.stderr).toContain('TYPE_MISMATCH');
    const dup = await cli(['names', 'bind', 'cli/demo', '127.0.0.1:1', '--ns', ns]);
    expect(dup.code).toBe(10 + 6); // ALREADY_EXISTS
    expect((await cli(['names', 'unbind', 'cli/demo', '--secret', 'wrong', '--ns', ns])).code).toBe(10 + 7);
    expect((await cli(['names', 'unbind', 'cli/demo', '--secret', ownerSecret, '--ns', ns])).code).toBe(0);
    const gone = await cli(['names', 'resolve', 'cli/demo', '--ns', ns]);
    expect(gone.code).toBe(10 + 5); // NOT_FOUND
  }, 60_000);

  it('writes, reads, takes, scans and runs commands in tuple spaces from the command line', async () => {
    const server = ['--server', tsAddress];
    const id = await cli(['ts', 'write', 'default', '("job", 1, owner="ann")', ...server]);
    expect(id.code).toBe(0);
    expect(Number(id.stdout.trim())).toBeGreaterThan(0);
    await cli(['ts', 'write', 'default', '("job", 2, owner="bob")', ...server]);
    const read = await cli(['ts', 'read', 'default', 'owner="bob"', ...server]);
    expect(read.stdout).toMatch(/\("job", 2, owner="bob"\)/);
    const scan = await cli(['ts', 'scan', 'default', '("job", ?int, *)', ...server, '--json']);
    expect((JSON.parse(scan.stdout) as Array<{ tuple: string }>).map((r) => r.tuple)).toEqual([
      '("job", 1, owner="ann")',
      '("job", 2, owner="bob")',
    ]);
    expect((await cli(['ts', 'take', 'default', '("job", 1..2, *)', ...server])).code).toBe(0);
    expect((await cli(['ts', 'take', 'default', '("job", 1..2, *)', ...server])).code).toBe(0);
    expect((await cli(['ts', 'take', 'default', '("job", *, *)', ...server])).code).toBe(15); // none left
    const spaces = await cli(['ts', 'spaces', ...server]);
    expect(spaces.stdout).toMatch(/default\s+0\s+READ,WRITE/);
    const denied = await cli(['ts', 'factories', 'default', '--add', 'extendable', ...server]);
    expect(denied.code).toBe(10 + 7); // PERMISSION_DENIED for anonymous
    const bad = await cli(['ts', 'write', 'default', '(job)', ...server]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('strings need quotes');
  }, 60_000);

  it('puts, gets, lists, watches and removes keys, and publishes and subscribes to events', async () => {
    const server = ['--server', `boot@${sharingAddress}`];
    const watch = spawnProcess(process.execPath, [
      BIN,
      'kv',
      'watch',
      'cli.',
      '--prefix',
      ...server,
      '--json',
    ]);
    const sub = spawnProcess(process.execPath, [BIN, 'events', 'sub', 'cli.*', '--count', '1', ...server]);
    const rev = await cli(['kv', 'put', 'cli.a', 'hello', ...server]);
    expect(rev.code).toBe(0);
    expect(Number(rev.stdout.trim())).toBeGreaterThan(0);
    expect((await cli(['kv', 'get', 'cli.a', ...server])).stdout).toBe('hello\n');
    const stale = await cli(['kv', 'put', 'cli.a', 'x', '--if-revision', '0', ...server]);
    expect(stale.code).toBe(10 + 9); // FAILED_PRECONDITION
    await cli(['kv', 'put', 'cli.b', 'two', ...server]);
    const ls = await cli(['kv', 'ls', 'cli.', ...server, '--json']);
    expect((JSON.parse(ls.stdout) as Array<{ key: string }>).map((r) => r.key)).toEqual(['cli.a', 'cli.b']);
    await watch.waitForOutput(/"kind": "PUT",\s*"key": "cli.b"/);
    expect((await cli(['kv', 'rm', 'cli.a', ...server])).code).toBe(0);
    expect((await cli(['kv', 'get', 'cli.a', ...server])).code).toBe(4);
    await watch.waitForOutput(/"kind": "DELETE",\s*"key": "cli.a"/);
    await watch.stop('SIGINT');
    // the subscriber is in place once it has connected; publish until it has one event
    for (let i = 0; i < 50 && !/cli\.news hi/.test(sub.output()); i++) {
      await cli(['events', 'pub', 'cli.news', 'hi', ...server]);
      await new Promise((r) => setTimeout(r, 100));
    }
    await sub.waitForOutput(/cli\.news hi/);
    const bad = await cli(['kv', 'put', 'bad key', 'x', ...server]);
    expect(bad.code).toBe(10 + 3);
    expect(bad.stderr).toContain('BAD_KEY');
  }, 60_000);

  it('watches changes as JSON lines until interrupted', async () => {
    const watch = spawnProcess(process.execPath, [
      BIN,
      'names',
      'watch',
      'w/',
      '--prefix',
      '--ns',
      ns,
      '--json',
    ]);
    await watch.waitForOutput(/"type":"SYNCED"/);
    const bound = await cli(['names', 'bind', 'w/one', '127.0.0.1:9001', '--ns', ns, '--json']);
    const { ownerSecret } = JSON.parse(bound.stdout) as { ownerSecret: string };
    await watch.waitForOutput(/"type":"BOUND".*"name":"w\/one"/);
    await cli(['names', 'unbind', 'w/one', '--secret', ownerSecret, '--ns', ns]);
    await watch.waitForOutput(/"type":"UNBOUND"/);
    expect(await watch.stop('SIGINT')).toBe(0);
  });

  it('allocates, stores, reads, probes and copies in the depot from the command line', async () => {
    const depot = up.addresses['ibp-depot'] as string;
    const alloc = await cli(['ibp', 'allocate', '1024', '--depot', depot, '--json']);
    expect(alloc.stderr).toBe('');
    expect(alloc.code).toBe(0);
    const caps = JSON.parse(alloc.stdout) as { readCap: string; writeCap: string; manageCap: string };
    const input = join(dir.path, 'in.txt');
    writeFileSync(input, 'stored from the CLI');
    expect((await cli(['ibp', 'store', caps.writeCap, input])).stdout).toContain('stored 19 bytes');
    expect((await cli(['ibp', 'read', caps.readCap])).stdout).toBe('stored from the CLI');
    const probe = JSON.parse((await cli(['ibp', 'probe', caps.manageCap, '--json'])).stdout) as {
      currentSize: number;
    };
    expect(Number(probe.currentSize)).toBe(19);
    const other = JSON.parse((await cli(['ibp', 'allocate', '64', '--depot', depot, '--json'])).stdout) as {
      writeCap: string;
      readCap: string;
    };
    expect((await cli(['ibp', 'copy', caps.readCap, other.writeCap, '--size', '6'])).stdout).toContain(
      'copied 6 bytes',
    );
    expect((await cli(['ibp', 'read', other.readCap])).stdout).toBe('stored');
    expect((await cli(['ibp', 'status', '--depot', depot])).stdout).toMatch(/stable\s+\d+\s+\d+\s+2/);
    expect((await cli(['ibp', 'read', caps.writeCap])).code).toBe(10 + 9); // a write capability cannot read
  });

  it('answers a usage error with exit code 2', async () => {
    expect((await cli(['names', 'bind'])).code).toBe(2);
    expect((await cli(['no-such-command'])).code).toBe(2);
  });

  it('stops every service cleanly on Ctrl-C', async () => {
    const code = await upProc.stop('SIGINT');
    expect(code).toBe(0);
    expect(upProc.output()).toContain('all stopped');
    expect(upProc.output()).toContain('[name-server] info  stopped');
  });
});

/** The next chunk a stream or socket receives, as text. */
function nextData(stream: Duplex | Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no data in ${timeoutMs} ms`)), timeoutMs);
    stream.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d.toString());
    });
  });
}

describe('backplane ds', () => {
  const dir = tempDir();
  let running: RunningDsCoordinator;
  const nodes: DsService[] = [];
  let client: Socket | undefined;

  beforeAll(async () => {
    running = await startDsCoordinator({
      port: 0,
      dataPort: 0,
      dataDir: dir.path,
      services: new Map([['default', { host: '127.0.0.1', port: 0 }]]),
    });
  });

  afterAll(async () => {
    client?.destroy();
    for (const n of nodes) await n.close();
    await running?.close();
    dir.remove();
  });

  const node = async (id: string) => {
    const ds = await DsService.create('default', null, { coordinator: running.address, node: id });
    nodes.push(ds);
    return ds;
  };

  it('lists nodes and clients and drains a node from the command line', async () => {
    const coordinator = ['--coordinator', running.address];
    const a = await node('a');
    // the only node takes the client; b attaches afterwards
    const address = running.services.get('default') as string;
    const colon = address.lastIndexOf(':');
    const socket = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
    client = socket;
    const atA = await a.serve(10_000);
    socket.write('hello');
    expect(await nextData(atA)).toBe('hello');
    const b = await node('b');

    const nodesOut = await cli(['ds', 'nodes', ...coordinator]);
    expect(nodesOut.stderr).toBe('');
    expect(nodesOut.code).toBe(0);
    expect(nodesOut.stdout).toMatch(/SERVICE\s+ADDRESS\s+PENDING/);
    expect(nodesOut.stdout).toContain(`default  ${address}`);
    expect(nodesOut.stdout).toMatch(/NODE\s+NAME\s+CLIENTS\s+STREAMS\s+BYTES-TO-NODE\s+BYTES-FROM-NODE/);
    // clients, streams, the 5 bytes relayed to the node, no handoffs (BYTES-FROM-NODE is not checked: while
    // a data connection is live the coordinator counts its 16-byte token in it)
    expect(nodesOut.stdout).toMatch(/ds:\/\/a\/default\s+default\s+1\s+1\s+5\s+\d+\s+0\s+0/);
    expect(nodesOut.stdout).toMatch(/ds:\/\/b\/default\s+default\s+0\s+0\s/);
    const status = JSON.parse((await cli(['ds', 'nodes', ...coordinator, '--json'])).stdout) as {
      nodes: Array<{ nodeUrl: string }>;
      services: Array<{ name: string; address: string }>;
    };
    expect(status.nodes.map((n) => n.nodeUrl).sort()).toEqual(['ds://a/default', 'ds://b/default']);
    expect(status.services).toEqual([expect.objectContaining({ name: 'default', address })]);

    const clientsOut = await cli(['ds', 'clients', ...coordinator]);
    expect(clientsOut.code).toBe(0);
    expect(clientsOut.stdout).toMatch(/CLIENT\s+NAME\s+NODE\s+STREAMS/);
    expect(clientsOut.stdout).toMatch(/ipv6:\/\/\[::ffff:127\.0\.0\.1\]\s+default\s+ds:\/\/a\/default\s+1/);
    const atB = await cli(['ds', 'clients', '--node', 'ds://b/default', ...coordinator, '--json']);
    expect(JSON.parse(atB.stdout)).toEqual([]);

    const drained = await cli(['ds', 'drain', 'ds://a/default', '--per-second', '5', ...coordinator]);
    expect(drained.code).toBe(0);
    expect(drained.stdout).toBe('ipv6://[::ffff:127.0.0.1] -> ds://b/default\n');
    expect(drained.stderr).toBe('1 moved, 0 failed\n');
    // b took the client by itself; receiveHandoff hands it to b's application, its connection still open
    const moved = await b.receiveHandoff(10_000);
    expect(moved.getUrl()).toBe('ipv6://[::ffff:127.0.0.1]');
    // (arrival.reason is not checked: a drained client arrives as 'application', the Release being carried
    // out by the SDK through an ordinary handoff)
    expect(moved.arrival.from).toBe('ds://a/default');
    const [stream] = moved.getStreams();
    if (!stream) throw new Error('the client arrived without its stream');
    socket.write('still here');
    expect(await nextData(stream)).toBe('still here');
    stream.write('from b');
    expect(await nextData(socket)).toBe('from b');
    const after = await cli(['ds', 'clients', '--node', 'ds://b/default', ...coordinator, '--json']);
    expect(JSON.parse(after.stdout)).toEqual([
      { clientUrl: 'ipv6://[::ffff:127.0.0.1]', name: 'default', nodeUrl: 'ds://b/default', streams: 1 },
    ]);
    await waitFor(async () => {
      const s = JSON.parse((await cli(['ds', 'nodes', ...coordinator, '--json'])).stdout) as {
        nodes: Array<{ nodeUrl: string; handoffsOut: number }>;
      };
      return s.nodes.find((n) => n.nodeUrl === 'ds://a/default')?.handoffsOut === 1;
    });

    // nothing left at a: drained at once
    const empty = await cli(['ds', 'drain', 'ds://a/default', ...coordinator]);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('');
    // with a gone, b's client has nowhere to go: one line saying why, and a non-zero exit
    await a.close();
    const stuck = await cli(['ds', 'drain', 'ds://b/default', ...coordinator, '--json']);
    expect(stuck.code).toBe(1);
    const line = JSON.parse(stuck.stdout) as { clientUrl: string; targetUrl: string; error: string };
    expect(line.clientUrl).toBe('ipv6://[::ffff:127.0.0.1]');
    expect(line.error).toMatch(/no other node/);
    // an unknown node is NOT_FOUND
    expect((await cli(['ds', 'drain', 'ds://nobody/default', ...coordinator])).code).toBe(10 + 5);
    expect((await cli(['ds', 'clients', '--coordinator', running.address, '--name', 'other'])).stdout).toBe(
      '',
    );
  }, 60_000);
});
