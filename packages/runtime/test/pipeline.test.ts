import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EchoServiceClient, EchoServiceService } from '@backplane/proto/echo';
import { CallsRequest, type CallsResponse, PipelineServiceClient } from '@backplane/proto/pipeline';
import { credentials, type Metadata, status } from '@grpc/grpc-js';
import {
  BackplaneError,
  bearerMetadata,
  type CallOptions,
  CallPipeline,
  MAX_PIPELINED_REQUEST,
  type RunningService,
  service,
  unary,
} from '../src';
import { type Gate, gate, startTestService } from '../src/testing';

const echoMethod = EchoServiceService.echo;

interface Seen {
  /** The `wait:` calls the handler has started, and those whose cancellation it saw. */
  started: string[];
  aborted: string[];
  /** What `hold` calls wait for. */
  release: Gate;
}
const newSeen = (): Seen => ({ started: [], aborted: [], release: gate() });

/**
 * An echo service whose payload says what to do: fail, sleep, wait for cancellation (`wait:`), or wait
 * for the test to open `seen.release` (`hold`).
 */
function echoService(seen: Seen) {
  return service(EchoServiceService, {
    echo: async (req, ctx) => {
      const text = req.payload.toString();
      if (text === 'throw') throw new Error('handler bug');
      if (text === 'not-found') throw BackplaneError.notFound('no such thing', { reason: 'NO_THING' });
      if (text.startsWith('sleep:')) await new Promise((r) => setTimeout(r, Number(text.slice(6))));
      if (text === 'hold') {
        seen.started.push('hold');
        await seen.release.opened;
      }
      if (text.startsWith('wait:')) {
        seen.started.push(text.slice(5));
        const signal = ctx.signal;
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        seen.aborted.push(text.slice(5));
        throw BackplaneError.from(signal.reason);
      }
      return { payload: req.payload };
    },
  });
}

const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A function that runs a full garbage collection (V8's `gc`, exposed for this test process). */
function gc(): () => Promise<void> {
  setFlagsFromString('--expose-gc');
  const run = runInNewContext('gc') as () => void;
  return async () => {
    for (let i = 0; i < 3; i += 1) {
      await new Promise((r) => setImmediate(r));
      run();
    }
  };
}

describe('the call pipeline', () => {
  const seen = newSeen();
  let running: RunningService;
  let client: EchoServiceClient;
  let pipe: CallPipeline;
  const echo = (text: string, opts = {}) =>
    pipe.unary(echoMethod, client.echo.bind(client), { payload: Buffer.from(text) }, opts);

  beforeAll(async () => {
    running = await startTestService({ name: 'echo', services: [echoService(seen)] });
    client = new EchoServiceClient(running.address, credentials.createInsecure());
    pipe = new CallPipeline(client);
  });
  afterAll(async () => {
    pipe.close();
    client.close();
    await running.close();
  });

  it('answers many concurrent calls, each with its own answer', async () => {
    const texts = Array.from({ length: 2000 }, (_, i) => `m${i}`);
    const answers = await Promise.all(texts.map((t) => echo(t)));
    expect(answers.map((a) => a.payload.toString())).toEqual(texts);
  });

  it('splits the calls and answers of one turn into messages of bounded size', async () => {
    // 64 calls of 100 KiB in one turn: 6.4 MB, over the 4 MiB a grpc-js client takes in one message
    const texts = Array.from({ length: 64 }, (_, i) => `${i}:`.padEnd(100 * 1024, 'x'));
    const answers = await Promise.all(texts.map((t) => echo(t)));
    expect(answers.map((a) => a.payload.toString())).toEqual(texts);
  });

  it('refuses a request it cannot encode with INVALID_ARGUMENT and a reason', async () => {
    const err = await pipe
      .unary(echoMethod, client.echo.bind(client), { payload: 12.5 } as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackplaneError);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((err as BackplaneError).message).toMatch(/could not be encoded/);
    expect((await echo('still fine')).payload.toString()).toBe('still fine');
  });

  it('fails a call with the status and reason the unary call has, and goes on', async () => {
    const viaPipe = await echo('not-found').catch((e: BackplaneError) => e);
    const viaUnary = await unary(client.echo.bind(client), { payload: Buffer.from('not-found') }).catch(
      (e: BackplaneError) => e,
    );
    expect(viaPipe).toBeInstanceOf(BackplaneError);
    expect(viaPipe).toMatchObject({ code: status.NOT_FOUND, reason: 'NO_THING', message: 'no such thing' });
    expect(viaPipe).toMatchObject({
      code: (viaUnary as BackplaneError).code,
      reason: (viaUnary as BackplaneError).reason,
    });
    await expect(echo('throw')).rejects.toMatchObject({ code: status.INTERNAL });
    expect((await echo('after')).payload.toString()).toBe('after');
  });

  it('honours the deadline: the caller gets DEADLINE_EXCEEDED and the server cancels the call', async () => {
    const t0 = Date.now();
    await expect(echo('wait:deadline', { timeoutMs: 100 })).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
    expect(Date.now() - t0).toBeLessThan(1000);
    await until(() => seen.aborted.includes('deadline'));
    await expect(echo('x', { deadline: new Date(Date.now() - 1) })).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
  });

  it('cancels a call when its signal aborts, on both sides', async () => {
    const ac = new AbortController();
    const call = echo('wait:signal', { signal: ac.signal });
    await until(() => seen.started.includes('signal'));
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: status.CANCELLED });
    await until(() => seen.aborted.includes('signal'));
    expect((await echo('still')).payload.toString()).toBe('still');
  });

  it('sends a request too big to share the stream as a plain call, beside pipelined ones', async () => {
    const big = 'b'.repeat(MAX_PIPELINED_REQUEST + 1);
    const [a, b, c] = await Promise.all([echo('small1'), echo(big), echo('small2')]);
    expect(a.payload.toString()).toBe('small1');
    expect(b.payload.length).toBe(big.length);
    expect(c.payload.toString()).toBe('small2');
  });

  it('opens no stream for a call it sends plainly or refuses before it starts', async () => {
    await until(() => running.inFlight() === 0);
    const fresh = new CallPipeline(client);
    const ac = new AbortController();
    ac.abort();
    try {
      const send = (text: string, opts = {}) =>
        fresh.unary(echoMethod, client.echo.bind(client), { payload: Buffer.from(text) }, opts);
      await expect(send('x', { signal: ac.signal })).rejects.toMatchObject({ code: status.CANCELLED });
      await expect(send('x', { deadline: new Date(Date.now() - 1) })).rejects.toMatchObject({
        code: status.DEADLINE_EXCEEDED,
      });
      expect((await send('b'.repeat(MAX_PIPELINED_REQUEST + 1))).payload.length).toBe(
        MAX_PIPELINED_REQUEST + 1,
      );
      // a Calls stream would count as a call in progress at the server until it ends
      await new Promise((r) => setTimeout(r, 200));
      expect(running.inFlight()).toBe(0);
    } finally {
      fresh.close();
    }
  });

  it('holds no request it has answered: a long-lived stream keeps no memory of the calls it carried', async () => {
    // 160 calls of 512 KiB each (80 MiB) go through the one stream, a few at a time; once collected,
    // the buffers still held must be a small fraction of that (a stream that retained each message it
    // read, as a race against a promise that lives as long as the stream does, held all of them)
    const payload = 'm'.repeat(512 * 1024);
    const collect = gc();
    await collect();
    const before = process.memoryUsage().arrayBuffers;
    for (let round = 0; round < 40; round += 1) {
      const answers = await Promise.all([0, 1, 2, 3].map(() => echo(payload)));
      expect(answers.every((a) => a.payload.length === payload.length)).toBe(true);
    }
    await collect();
    const grownMiB = (process.memoryUsage().arrayBuffers - before) / 2 ** 20;
    expect(grownMiB).toBeLessThan(16);
  });

  it('counts each pipelined call in progress (and the stream that carries them), and none once they ended', async () => {
    await until(() => running.inFlight() === 0);
    const ac = new AbortController();
    const names = ['c0', 'c1', 'c2', 'c3', 'c4'];
    const calls = names.map((n) => echo(`wait:${n}`, { signal: ac.signal }).catch((e: unknown) => e));
    await until(() => names.every((n) => seen.started.includes(n)));
    // the five calls, and the Calls stream that carries them
    expect(running.inFlight()).toBe(6);
    ac.abort();
    for (const r of await Promise.all(calls)) expect(r).toMatchObject({ code: status.CANCELLED });
    await until(() => names.every((n) => seen.aborted.includes(n)));
    await until(() => running.inFlight() === 0);
    expect(running.inFlight()).toBe(0);
  });
});

describe('the Calls stream on the wire', () => {
  let running: RunningService;
  let rpc: PipelineServiceClient;
  beforeAll(async () => {
    running = await startTestService({ name: 'echo', services: [echoService(newSeen())] });
    rpc = new PipelineServiceClient(running.address, credentials.createInsecure());
  });
  afterAll(async () => {
    rpc.close();
    await running.close();
  });

  it('answers an unknown method UNIMPLEMENTED and a malformed request INVALID_ARGUMENT, and keeps the stream', async () => {
    const stream = rpc.calls();
    const answers: CallsResponse[] = [];
    stream.on('data', (r: CallsResponse) => answers.push(r));
    const ended = new Promise((r) => stream.on('status', r));
    const base = CallsRequest.fromPartial({});
    stream.write({ ...base, id: 1, method: '/no.such.Service/Call' });
    stream.write({ ...base, id: 2, method: echoMethod.path, request: Buffer.from([0xff, 0xff, 0xff]) });
    stream.write({
      ...base,
      id: 3,
      method: echoMethod.path,
      request: echoMethod.requestSerialize({ payload: Buffer.from('ok') }),
    });
    stream.write({ ...base, id: 4, method: EchoServiceService.echo.path, metadata: { 'Bad Key!': 'x' } });
    stream.end();
    expect(await ended).toMatchObject({ code: status.OK });
    const byId = new Map(answers.flatMap((a) => [a, ...a.more]).map((a) => [a.id, a]));
    expect(byId.get(1)).toMatchObject({ code: status.UNIMPLEMENTED });
    expect(byId.get(2)).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(byId.get(3)).toMatchObject({ code: status.OK });
    expect(echoMethod.responseDeserialize(byId.get(3)?.response as Buffer).payload.toString()).toBe('ok');
    expect(byId.get(4)).toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('runs the calls a message carries in `more` as calls of their own, and answers the calls of one turn in one message', async () => {
    const stream = rpc.calls();
    const messages: CallsResponse[] = [];
    stream.on('data', (r: CallsResponse) => messages.push(r));
    const ended = new Promise((r) => stream.on('status', r));
    const call = (id: number, text: string) =>
      CallsRequest.fromPartial({
        id,
        method: echoMethod.path,
        request: echoMethod.requestSerialize({ payload: Buffer.from(text) }),
      });
    // one message, five calls; the nested `more` of a `more` entry is not run
    stream.write({
      ...call(1, 'a'),
      more: [call(2, 'b'), call(3, 'c'), { ...call(4, 'd'), more: [call(9, 'x')] }, call(5, 'e')],
    });
    stream.end();
    expect(await ended).toMatchObject({ code: status.OK });
    const answers = messages.flatMap((m) => [m, ...m.more]);
    expect(answers.map((a) => a.id).sort()).toEqual([1, 2, 3, 4, 5]);
    for (const a of answers) {
      expect(a.code).toBe(status.OK);
      expect(echoMethod.responseDeserialize(a.response).payload.toString()).toBe('_abcde'[a.id]);
    }
    // the echo answers at once: all five finish in one turn and come back in one message
    expect(messages).toHaveLength(1);
  });

  it('finishes the calls in progress when the client ends its side', async () => {
    const stream = rpc.calls();
    const answers: CallsResponse[] = [];
    stream.on('data', (r: CallsResponse) => answers.push(r));
    const ended = new Promise((r) => stream.on('status', r));
    stream.write(
      CallsRequest.fromPartial({
        id: 7,
        method: echoMethod.path,
        request: echoMethod.requestSerialize({ payload: Buffer.from('sleep:100') }),
      }),
    );
    stream.end();
    await ended;
    expect(answers.map((a) => [a.id, a.code])).toEqual([[7, status.OK]]);
  });
});

/** Runs `fn` with an echo server started with `options`, a client and its pipeline; `send` echoes a text. */
async function withPipe(
  options: Partial<Parameters<typeof startTestService>[0]>,
  fn: (t: {
    running: RunningService;
    seen: Seen;
    send: (text: string, opts?: CallOptions) => Promise<{ payload: Buffer }>;
  }) => Promise<void>,
): Promise<void> {
  const seen = newSeen();
  const running = await startTestService({
    name: 'echo',
    services: [echoService(seen)],
    ...options,
  });
  const client = new EchoServiceClient(running.address, credentials.createInsecure());
  const pipe = new CallPipeline(client);
  const send = (text: string, opts?: CallOptions) =>
    pipe.unary(echoMethod, client.echo.bind(client), { payload: Buffer.from(text) }, opts);
  try {
    await fn({ running, seen, send });
  } finally {
    pipe.close();
    client.close();
    await running.close();
  }
}

describe('the call pipeline with authentication, limits and old servers', () => {
  it('runs each call through the server authentication with the metadata it was given', () =>
    withPipe({ authToken: 'sesame-sesame-sesame' }, async ({ send }) => {
      const call = (md?: Metadata) => send('hi', md ? { metadata: md } : {});
      expect((await call(bearerMetadata('sesame-sesame-sesame'))).payload.toString()).toBe('hi');
      await expect(call(bearerMetadata('wrong'))).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
      await expect(call()).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
      expect((await call(bearerMetadata('sesame-sesame-sesame'))).payload.toString()).toBe('hi');
    }));

  it('refuses calls beyond the per-client limit with RESOURCE_EXHAUSTED, as unary calls are', () =>
    withPipe({ limits: { maxCalls: 1000, maxCallsPerClient: 5 } }, async ({ send }) => {
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => send('sleep:200')));
      // (each refusal comes at once; the five admitted calls end 200 ms later)
      const refused = results.filter((r) => r.status === 'rejected');
      expect(refused).toHaveLength(5);
      for (const r of refused)
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
      // the stream that carries them takes no slot of its own
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    }));

  it('falls back to plain unary calls against a server without the pipeline', () =>
    withPipe({ pipeline: false }, async ({ send }) => {
      const texts = Array.from({ length: 20 }, (_, i) => `p${i}`);
      const answers = await Promise.all(texts.map((t) => send(t)));
      expect(answers.map((a) => a.payload.toString())).toEqual(texts);
      expect((await send('again')).payload.toString()).toBe('again');
    }));

  it('answers the calls in progress before the stream ends when the server shuts down', () =>
    withPipe({}, async ({ running, seen, send }) => {
      const slow = send('hold');
      await until(() => seen.started.includes('hold'));
      const t0 = Date.now();
      const closing = running.close();
      seen.release.open();
      expect((await slow).payload.toString()).toBe('hold');
      await closing;
      // the server did not wait for the stream until its forced shutdown (2 s in tests)
      expect(Date.now() - t0).toBeLessThan(1500);
      await expect(send('x', { timeoutMs: 2000 })).rejects.toMatchObject({ code: status.UNAVAILABLE });
    }));
});
