import { EchoServiceClient, EchoServiceService } from '@backplane/proto/echo';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { credentials, status } from '@grpc/grpc-js';
import { BackplaneError, bearerMetadata, MAX_DETAILS, type RunningService, service, unary } from '../src';
import {
  type Gate,
  gate,
  healthCheck,
  reflectionListServices,
  startTestService,
  waitFor,
} from '../src/testing';

function echoClient(address: string) {
  return new EchoServiceClient(address, credentials.createInsecure());
}

describe('startService', () => {
  let running: RunningService;
  let client: EchoServiceClient;

  beforeAll(async () => {
    running = await startTestService({
      name: 'echo',
      services: [
        service(EchoServiceService, {
          echo: async (req) => {
            const text = req.payload.toString();
            if (text === 'throw') throw new Error('handler bug');
            if (text === 'throw-string') throw 'not even an Error';
            if (text === 'not-found') throw BackplaneError.notFound('no such thing');
            if (text.startsWith('quote:')) throw BackplaneError.notFound(`no thing named "${text}"`);
            if (text.startsWith('sleep:')) {
              await new Promise((r) => setTimeout(r, Number(text.slice(6))));
            }
            return { payload: req.payload };
          },
        }),
      ],
    });
    client = echoClient(running.address);
  });

  afterAll(async () => {
    client.close();
    await running.close();
  });

  it('serves the registered service', async () => {
    const res = await unary(client.echo.bind(client), { payload: Buffer.from('hi') });
    expect(res.payload.toString()).toBe('hi');
  });

  it('answers INTERNAL when a handler throws, and keeps serving', async () => {
    await expect(unary(client.echo.bind(client), { payload: Buffer.from('throw') })).rejects.toMatchObject({
      code: status.INTERNAL,
      reason: 'INTERNAL',
    });
    await expect(
      unary(client.echo.bind(client), { payload: Buffer.from('throw-string') }),
    ).rejects.toMatchObject({
      code: status.INTERNAL,
    });
    const res = await unary(client.echo.bind(client), { payload: Buffer.from('still here') });
    expect(res.payload.toString()).toBe('still here');
  });

  it('maps a BackplaneError to its code and carries the reason', async () => {
    const err = await unary(client.echo.bind(client), { payload: Buffer.from('not-found') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackplaneError);
    expect(err).toMatchObject({ code: status.NOT_FOUND, reason: 'NOT_FOUND', message: 'no such thing' });
  });

  it('cuts an error message that quotes a huge input, so the client gets the error (fuzz finding)', async () => {
    // a 500 KB message in grpc-message exceeded what the client accepts: it saw a dropped connection
    const huge = `quote:${'a'.repeat(500_000)}`;
    const err = await unary(
      client.echo.bind(client),
      { payload: Buffer.from(huge) },
      { deadline: new Date(Date.now() + 5000) },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.NOT_FOUND, reason: 'NOT_FOUND' });
    expect((err as Error).message.length).toBeLessThanOrEqual(MAX_DETAILS);
    expect((err as Error).message).toMatch(/^no thing named "quote:a+… \(500023 characters, cut\)$/);
  });

  it('answers INVALID_ARGUMENT for a malformed protobuf message', async () => {
    // field 1 declared as a varint though `payload` is length-delimited, then a truncated length prefix
    const bad = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
    const err = await new Promise<{ code: number }>((resolve) => {
      client.makeUnaryRequest(
        '/backplane.echo.v1.EchoService/Echo',
        (b: Buffer) => b,
        (b: Buffer) => b,
        bad,
        (e) => resolve(e as unknown as { code: number }),
      );
    });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    // sanity: a valid hand-encoded message works through the same path
    const good = Buffer.from(new BinaryWriter().uint32(10).bytes(Buffer.from('x')).finish());
    const ok = await new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(
        '/backplane.echo.v1.EchoService/Echo',
        (b: Buffer) => b,
        (b: Buffer) => b,
        good,
        (e, r) => (e ? reject(e) : resolve(r as Buffer)),
      );
    });
    expect(ok.toString('hex')).toBe(good.toString('hex'));
  });

  it('refuses a request the client cannot encode with INVALID_ARGUMENT, not INTERNAL', async () => {
    const err = await unary(client.echo.bind(client), { payload: 12.5 } as never).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((err as Error).message).toMatch(/could not be encoded/);
    // and the client keeps working
    const res = await unary(client.echo.bind(client), { payload: Buffer.from('fine') });
    expect(res.payload.toString()).toBe('fine');
  });

  it('honours client deadlines', async () => {
    const err = await unary(
      client.echo.bind(client),
      { payload: Buffer.from('sleep:500') },
      { timeoutMs: 50 },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.DEADLINE_EXCEEDED });
  });

  it('serves grpc.health.v1 and server reflection', async () => {
    await expect(healthCheck(running.address)).resolves.toBe('SERVING');
    await expect(healthCheck(running.address, 'backplane.echo.v1.EchoService')).resolves.toBe('SERVING');
    const services = await reflectionListServices(running.address);
    expect(services).toContain('backplane.echo.v1.EchoService');
    // grpcurl can describe and call the health service too
    expect(services).toContain('grpc.health.v1.Health');
  });
});

describe('startService with a bearer token', () => {
  it('refuses calls without the token and serves calls with it; health stays open', async () => {
    const token = 'a-long-enough-test-token';
    const running = await startTestService({
      name: 'echo',
      authToken: token,
      services: [service(EchoServiceService, { echo: async (req) => ({ payload: req.payload }) })],
    });
    const client = echoClient(running.address);
    try {
      await expect(unary(client.echo.bind(client), { payload: Buffer.from('x') })).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
      });
      await expect(
        unary(
          client.echo.bind(client),
          { payload: Buffer.from('x') },
          { metadata: bearerMetadata('wrong-token-xxxxxxxx') },
        ),
      ).rejects.toMatchObject({ code: status.UNAUTHENTICATED, message: 'invalid bearer token' });
      const res = await unary(
        client.echo.bind(client),
        { payload: Buffer.from('ok') },
        { metadata: bearerMetadata(token) },
      );
      expect(res.payload.toString()).toBe('ok');
      await expect(healthCheck(running.address)).resolves.toBe('SERVING');
    } finally {
      client.close();
      await running.close();
    }
  });
});

describe('RunningService.close', () => {
  it('runs shutdown hooks at once, drains an in-flight call, then runs close hooks and refuses new calls', async () => {
    const order: string[] = [];
    const finish = gate();
    const running = await startTestService({
      name: 'echo',
      shutdownTimeoutMs: 10_000,
      onClose: [() => order.push('store closed')],
      services: [
        service(EchoServiceService, {
          echo: async (req) => {
            await finish.opened;
            order.push('call done');
            return { payload: req.payload };
          },
        }),
      ],
    });
    running.addShutdownHook(() => order.push('left the name server'));
    const client = echoClient(running.address);
    const inFlight = unary(client.echo.bind(client), { payload: Buffer.from('slow') });
    await waitFor(() => running.inFlight() === 1);
    const closing = running.close();
    // the shutdown hooks run while the call is still in progress, the close hooks only after it
    await waitFor(() => order.includes('left the name server'));
    expect(order).toEqual(['left the name server']);
    finish.open();
    await closing;
    await expect(inFlight).resolves.toMatchObject({ payload: Buffer.from('slow') });
    expect(order).toEqual(['left the name server', 'call done', 'store closed']);
    await expect(
      unary(client.echo.bind(client), { payload: Buffer.from('late') }, { timeoutMs: 500 }),
    ).rejects.toMatchObject({ code: status.UNAVAILABLE });
    client.close();
  });

  it('cancels calls still running after the shutdown timeout', async () => {
    // a handler that ignores its cancellation signal: only the shutdown timeout ends its call
    const stuck = gate();
    const running = await startTestService({
      name: 'echo',
      shutdownTimeoutMs: 200,
      services: [
        service(EchoServiceService, {
          echo: async (req) => {
            await stuck.opened;
            return { payload: req.payload };
          },
        }),
      ],
    });
    const client = echoClient(running.address);
    const call = unary(client.echo.bind(client), { payload: Buffer.from('x') }).catch((e: unknown) => e);
    await waitFor(() => running.inFlight() === 1);
    const started = Date.now();
    await running.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await call).toMatchObject({ code: status.CANCELLED });
    stuck.open();
    client.close();
  });
});

/** An echo service under `limits` whose calls wait for `release` (each counted in `started` first). */
function heldEcho(limits: { maxCalls: number; maxCallsPerClient: number }, release: Gate) {
  return startTestService({
    name: 'echo',
    limits,
    services: [
      service(EchoServiceService, {
        echo: async (req) => {
          if (req.payload.toString() === 'hold') await release.opened;
          return { payload: req.payload };
        },
      }),
    ],
  });
}

describe('startService load shedding', () => {
  it('refuses calls beyond the per-client limit at once with RESOURCE_EXHAUSTED, and admits again when they end', async () => {
    const release = gate();
    const running = await heldEcho({ maxCalls: 100, maxCallsPerClient: 3 }, release);
    const client = echoClient(running.address);
    try {
      const held = Array.from({ length: 3 }, () =>
        unary(client.echo.bind(client), { payload: Buffer.from('hold') }),
      );
      await waitFor(() => running.inFlight() === 3);
      // refused while the three are still held: at once, not queued behind them
      await expect(unary(client.echo.bind(client), { payload: Buffer.from('0') })).rejects.toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        reason: 'TOO_MANY_CALLS',
      });
      expect(running.inFlight()).toBe(3);
      release.open();
      await Promise.all(held);
      expect((await unary(client.echo.bind(client), { payload: Buffer.from('0') })).payload.toString()).toBe(
        '0',
      );
      expect(running.inFlight()).toBe(0);
    } finally {
      release.open();
      client.close();
      await running.close();
    }
  });

  it('refuses calls beyond the process limit with OVERLOADED', async () => {
    const release = gate();
    const running = await heldEcho({ maxCalls: 2, maxCallsPerClient: 100 }, release);
    const client = echoClient(running.address);
    try {
      const held = Array.from({ length: 2 }, () =>
        unary(client.echo.bind(client), { payload: Buffer.from('hold') }),
      );
      await waitFor(() => running.inFlight() === 2);
      await expect(unary(client.echo.bind(client), { payload: Buffer.from('0') })).rejects.toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        reason: 'OVERLOADED',
      });
      expect(await healthCheck(running.address)).toBe('SERVING');
      release.open();
      await Promise.all(held);
    } finally {
      release.open();
      client.close();
      await running.close();
    }
  });
});
