import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DsService, type HandoffPolicy, PickFirstHandoffPolicy } from '@backplane/ds-client';
import { CoordinatorServiceClient } from '@backplane/proto/ds';
import { BackplaneError, unary } from '@backplane/runtime';
import { freePort } from '@backplane/runtime/testing';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import {
  attachNode,
  connectClient,
  readBytes,
  startCoordinator,
  type TestCoordinator,
  tracker,
  write,
} from './helpers';

const code = (c: status) => expect.objectContaining({ code: c });

describe('Appendix A error cases', () => {
  let c: TestCoordinator;
  const t = tracker(() => c);
  const { node, client } = t;
  beforeAll(async () => {
    c = await startCoordinator({ names: ['default', 'other'] });
  });
  afterEach(async () => {
    await t.cleanup();
  });
  afterAll(() => c.stop());

  it('constructor: NoSuccess without a coordinator, DoesNotExist for an unknown name, AlreadyExists per node', async () => {
    const port = await freePort();
    await expect(
      DsService.create('default', null, {
        coordinator: `127.0.0.1:${port}`,
        node: 'x',
        connectTimeoutMs: 2000,
      }),
    ).rejects.toEqual(code(status.UNAVAILABLE));
    await expect(attachNode(c, { name: 'nope' })).rejects.toEqual(code(status.NOT_FOUND));
    await expect(attachNode(c, { name: 'bad name!' })).rejects.toEqual(code(status.INVALID_ARGUMENT));
    await node({ node: 'same' });
    await expect(attachNode(c, { node: 'same' })).rejects.toEqual(code(status.ALREADY_EXISTS));
    // the same node id under another name is another service
    await node({ node: 'same', name: 'other' });
  });

  it('serve and receive_handoff: Timeout', async () => {
    const a = await node();
    await expect(a.serve(50)).rejects.toEqual(code(status.DEADLINE_EXCEEDED));
    await expect(a.receiveHandoff(0)).rejects.toEqual(code(status.DEADLINE_EXCEEDED));
  });

  it('get_client: DoesNotExist for a stream of no client here, BadParameter for a closed stream', async () => {
    const a = await node();
    const { PassThrough } = await import('node:stream');
    expect(() => a.getClient(new PassThrough())).toThrow(code(status.NOT_FOUND));
    const sock = await client('127.0.1.1');
    const s = await a.serve(5000);
    const ended = new Promise((r) => s.once('end', r));
    s.resume();
    sock.end();
    await ended;
    expect(() => a.getClient(s)).toThrow(code(status.INVALID_ARGUMENT));
  });

  it('handoff: IncorrectState without a policy, DoesNotExist without targets or for a gone client, policy errors forwarded', async () => {
    const a = await node();
    await client('127.0.1.2');
    const s = await a.serve(5000);
    const dc = a.getClient(s);
    await expect(a.handoff(dc)).rejects.toEqual(code(status.FAILED_PRECONDITION));
    const p = await node({ policy: new PickFirstHandoffPolicy() });
    await client('127.0.1.3');
    // least clients: the new client went to p (a has one)
    const sp = await p.serve(5000);
    const other = p.getClient(sp);
    await a.close(true);
    t.forget(a);
    expect(await p.getAllTargets()).toEqual([]);
    await expect(p.handoff(other)).rejects.toEqual(code(status.NOT_FOUND));
    const failing: HandoffPolicy = {
      getTarget: () => {
        throw BackplaneError.unavailable('policy says no');
      },
    };
    const q = await node({ policy: failing });
    expect(await p.getAllTargets()).toEqual([q.url]);
    await client('127.0.1.4');
    const sq = await q.serve(5000);
    await expect(q.handoff(q.getClient(sq))).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      message: 'policy says no',
    });
  });

  it('handoff_to: DoesNotExist for an unknown target, BadParameter for a malformed one or its own node; IncorrectState after a handoff', async () => {
    const a = await node();
    const b = await node({ name: 'other' });
    const sock = await client('127.0.1.5');
    const s = await a.serve(5000);
    const dc = a.getClient(s);
    await expect(a.handoffTo('ds://nobody/default', dc, 2000)).rejects.toEqual(code(status.NOT_FOUND));
    await expect(a.handoffTo(b.url, dc, 2000)).rejects.toEqual(code(status.NOT_FOUND));
    await expect(a.handoffTo('http://x', dc, 2000)).rejects.toEqual(code(status.INVALID_ARGUMENT));
    await expect(a.handoffTo(a.url, dc, 2000)).rejects.toEqual(code(status.INVALID_ARGUMENT));
    // the failed attempts left the client where it was
    await write(sock, 'still');
    expect((await readBytes(s, 5)).toString()).toBe('still');
    const c2 = await node();
    const again = a.getClient(s);
    await a.handoffTo(c2.url, again, 5000);
    for (const call of [
      () => again.getUrl(),
      () => again.getStreams(),
      () => again.getMessage(),
      () => again.setMessage(null),
      () => dc.getUrl(),
    ]) {
      expect(call).toThrow(code(status.FAILED_PRECONDITION));
    }
    // the service no longer handles the client: DoesNotExist (the old object itself: IncorrectState)
    await expect(a.handoffTo(c2.url, again, 2000)).rejects.toEqual(code(status.NOT_FOUND));
    again.close();
    expect(() => a.getClient(s)).toThrow(code(status.NOT_FOUND));
  });

  it('close: later calls fail with IncorrectState', async () => {
    const a = await node();
    await a.close();
    await expect(a.serve(10)).rejects.toEqual(code(status.FAILED_PRECONDITION));
    await expect(a.receiveHandoff(10)).rejects.toEqual(code(status.FAILED_PRECONDITION));
    await expect(a.getAllTargets()).rejects.toEqual(code(status.FAILED_PRECONDITION));
    expect(() => a.getAllClients()).toThrow(code(status.FAILED_PRECONDITION));
    expect(() => a.getAllStreams()).toThrow(code(status.FAILED_PRECONDITION));
    await a.close();
  });
});

describe('CoordinatorService control input', () => {
  let c: TestCoordinator;
  let stub: CoordinatorServiceClient;
  beforeAll(async () => {
    c = await startCoordinator();
    stub = new CoordinatorServiceClient(c.running.address, credentials.createInsecure());
  });
  afterAll(async () => {
    stub.close();
    await c.stop();
  });

  function firstError(call: NodeJS.EventEmitter): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      call.on('data', () => {});
      call.once('error', (err: { code: number; details: string }) => resolve(err));
    });
  }

  it('answers a session that does not start with Attach, or sends Attach twice, with INVALID_ARGUMENT', async () => {
    let call = stub.attach(new Metadata());
    let err = firstError(call);
    call.write({ kind: { $case: 'detach', detach: { bindingReset: true } } });
    expect((await err).code).toBe(status.INVALID_ARGUMENT);
    call = stub.attach(new Metadata());
    err = firstError(call);
    call.write({ kind: { $case: 'attach', attach: { name: 'default', node: 'twice' } } });
    call.write({ kind: { $case: 'attach', attach: { name: 'default', node: 'twice' } } });
    expect((await err).code).toBe(status.INVALID_ARGUMENT);
    // the failed session is gone: the node id can attach again
    const ds = await attachNode(c, { node: 'twice' });
    await ds.close();
  });

  it('refuses handoffs with a wrong session, a malformed client URL or out-of-order messages', async () => {
    const ds = await attachNode(c, { node: 'h' });
    const handoff = (messages: object[]) => {
      const call = stub.handoff(new Metadata());
      const err = firstError(call);
      for (const m of messages) call.write(m);
      return err;
    };
    expect(
      (
        await handoff([
          {
            kind: {
              $case: 'start',
              start: { session: 'forged', clientUrl: 'ipv6://[::1]', targetUrl: 'ds://a/default', reason: 0 },
            },
          },
        ])
      ).code,
    ).toBe(status.FAILED_PRECONDITION);
    expect((await handoff([{ kind: { $case: 'finish', finish: { writeClosedStreamIds: [] } } }])).code).toBe(
      status.INVALID_ARGUMENT,
    );
    // a real session but a client URL that is not one, and a client that is not there
    const secret = (ds as unknown as { secret: string }).secret;
    expect(
      (
        await handoff([
          {
            kind: {
              $case: 'start',
              start: { session: secret, clientUrl: '10.0.0.1', targetUrl: 'ds://a/default', reason: 0 },
            },
          },
        ])
      ).code,
    ).toBe(status.INVALID_ARGUMENT);
    expect(
      (
        await handoff([
          {
            kind: {
              $case: 'start',
              start: { session: secret, clientUrl: 'ipv6://[::1]', targetUrl: 'ds://a/default', reason: 0 },
            },
          },
        ])
      ).code,
    ).toBe(status.NOT_FOUND);
    await ds.close();
  });

  it('answers bad ListTargets, Drain and ListClients input with the right codes', async () => {
    await expect(unary(stub.listTargets.bind(stub), { session: 'nope' })).rejects.toEqual(
      code(status.FAILED_PRECONDITION),
    );
    const drain = stub.drain({ nodeUrl: 'not a url', perSecond: 0 });
    expect((await firstError(drain)).code).toBe(status.INVALID_ARGUMENT);
    const drain2 = stub.drain({ nodeUrl: 'ds://ghost/default', perSecond: 0 });
    expect((await firstError(drain2)).code).toBe(status.NOT_FOUND);
    expect((await unary(stub.listClients.bind(stub), { name: 'x', nodeUrl: '' })).clients).toEqual([]);
  });

  it('a data connection with a forged token is dropped and nothing else is disturbed', async () => {
    const { connect } = await import('node:net');
    const [host, port] = c.running.dataAddress.split(':') as [string, string];
    const sock = connect({ host, port: Number(port) });
    sock.write(Buffer.alloc(16, 7));
    sock.resume();
    await new Promise((r) => sock.once('close', r));
    const ds = await attachNode(c);
    const cl = await connectClient(c.address, '127.0.2.1');
    const s = await ds.serve(5000);
    await write(cl, 'ok');
    expect((await readBytes(s, 2)).toString()).toBe('ok');
    cl.destroy();
    await ds.close();
  });

  it('a handoff message over the limit is refused before anything moves', async () => {
    const a = await attachNode(c, { node: 'big-a' });
    const cl = await connectClient(c.address, '127.0.2.2');
    const s = await a.serve(5000);
    const b = await attachNode(c, { node: 'big-b' });
    const dc = a.getClient(s);
    // the SDK refuses it at once: the client stays, with the message it had
    dc.setMessage('kept');
    expect(() => dc.setMessage(Buffer.alloc(1024 * 1024 + 1))).toThrow(
      expect.objectContaining({ code: status.INVALID_ARGUMENT }),
    );
    expect(dc.getMessage()?.toString()).toBe('kept');
    expect(a.getAllClients().map((x) => x.getUrl())).toEqual([dc.getUrl()]);
    // a node that sends one anyway (not through setMessage) is refused by the coordinator; its streams
    // had been released, so the client goes on to the target, without the message
    (dc as unknown as { message: Buffer }).message = Buffer.alloc(1024 * 1024 + 1);
    await expect(a.handoffTo(b.url, dc, 5000)).rejects.toEqual(code(status.INVALID_ARGUMENT));
    const got = await b.receiveHandoff(5000);
    expect(got.getMessage()).toBeNull();
    cl.destroy();
    await a.close();
    await b.close();
  });
});

describe('connection limit', () => {
  it("closes a client's connections beyond its limit at once and keeps the others", async () => {
    const c = await startCoordinator({ maxConnectionsPerClient: 2 });
    const ds = await attachNode(c);
    const kept = [await connectClient(c.address, '127.0.4.1'), await connectClient(c.address, '127.0.4.1')];
    const served = [await ds.serve(5000), await ds.serve(5000)];
    const over = await connectClient(c.address, '127.0.4.1');
    over.resume();
    await new Promise((r) => over.once('end', r));
    over.destroy();
    // another client is not affected, nor are the kept connections
    const other = await connectClient(c.address, '127.0.4.2');
    await ds.serve(5000);
    await write(kept[0] as Socket, 'ok');
    expect((await readBytes(served[0] as Duplex, 2)).toString()).toBe('ok');
    for (const s of [...kept, other]) s.destroy();
    await ds.close();
    await c.stop();
  });
});

describe('PROXY protocol', () => {
  it('takes the client address from a PROXY v1 line and drops connections without one', async () => {
    const c = await startCoordinator({ proxyProtocol: true });
    const ds = await attachNode(c);
    const good = await connectClient(c.address, '127.0.0.1');
    good.write('PROXY TCP4 10.1.2.3 10.0.0.1 40000 7410\r\nhello');
    const s = await ds.serve(5000);
    expect(ds.getClient(s).getUrl()).toBe('ipv6://[::ffff:10.1.2.3]');
    expect((await readBytes(s, 5)).toString()).toBe('hello');
    const bad = await connectClient(c.address, '127.0.0.1');
    bad.write('GET / HTTP/1.1\r\n\r\n');
    bad.resume();
    await new Promise((r) => bad.once('end', r));
    bad.destroy();
    good.destroy();
    await ds.close();
    await c.stop();
  });
});
