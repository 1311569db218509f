import { type ClientHttp2Session, constants as h2, connect as h2connect } from 'node:http2';
import { createConnection } from 'node:net';
import type { Random } from './random';

/** What a raw attack saw: the grpc-status the server answered with (if any), or how the connection ended. */
export interface FrameOutcome {
  attack: string;
  grpcStatus: number | undefined;
  httpStatus: number | undefined;
  note: string;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TIMEOUT_MS = 3000;

function grpcFrame(payload: Buffer, opts: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = opts.compressed ? 1 : 0;
  head.writeUInt32BE(opts.declaredLength ?? payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Raw bytes on a TCP connection; resolves when the server closes it or after the timeout. */
export function tcpAttack(
  port: number,
  attack: string,
  chunks: Buffer[],
  holdMs = 300,
): Promise<FrameOutcome> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let note = 'held open';
    const done = () => {
      socket.destroy();
      resolve({ attack, grpcStatus: undefined, httpStatus: undefined, note });
    };
    const timer = setTimeout(done, TIMEOUT_MS);
    socket.on('error', (e) => {
      note = `error ${e.message}`;
    });
    socket.on('close', () => {
      note = note === 'held open' ? 'closed by server' : note;
      clearTimeout(timer);
      done();
    });
    socket.on('connect', async () => {
      for (const c of chunks) {
        socket.write(c);
        await new Promise((r) => setTimeout(r, 5));
      }
      setTimeout(() => {
        clearTimeout(timer);
        done();
      }, holdMs);
    });
    socket.resume();
  });
}

function session(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(`http://127.0.0.1:${port}`);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/2 request with the given headers and body chunks; reports the status it got. */
async function h2Request(
  port: number,
  attack: string,
  headers: Record<string, string>,
  body: Buffer[],
  opts: { endStream?: boolean; resetAfterMs?: number } = {},
): Promise<FrameOutcome> {
  const s = await session(port);
  s.on('error', () => undefined);
  return new Promise((resolve) => {
    let httpStatus: number | undefined;
    let grpcStatus: number | undefined;
    let note = '';
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ attack, grpcStatus, httpStatus, note });
    };
    const timer = setTimeout(() => {
      note = note || 'no answer within the timeout (stream still open)';
      finish();
    }, TIMEOUT_MS);
    const req = s.request({
      ':method': 'POST',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    req.on('response', (h) => {
      httpStatus = Number(h[':status']);
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) grpcStatus = Number(t['grpc-status']);
    });
    req.on('error', (e) => {
      note = `stream error ${e.message}`;
    });
    req.on('data', () => undefined);
    req.on('close', () => {
      note = note || `closed (rst ${req.rstCode})`;
      finish();
    });
    for (const b of body) req.write(b);
    if (opts.resetAfterMs !== undefined) {
      setTimeout(() => req.close(h2.NGHTTP2_CANCEL), opts.resetAfterMs);
    } else if (opts.endStream !== false) req.end();
  });
}

/** Many streams opened and reset at once (the "rapid reset" attack), then a settings and ping flood. */
async function floodAttack(port: number, path: string, attack: string): Promise<FrameOutcome> {
  const s = await session(port);
  s.on('error', () => undefined);
  let opened = 0;
  try {
    for (let i = 0; i < 2000 && !s.destroyed; i += 1) {
      const req = s.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.on('error', () => undefined);
      req.close(h2.NGHTTP2_CANCEL);
      opened += 1;
    }
    for (let i = 0; i < 500 && !s.destroyed; i += 1) s.ping(() => undefined);
    for (let i = 0; i < 200 && !s.destroyed; i += 1) s.settings({ initialWindowSize: (i * 7919) % 2 ** 31 });
  } catch (err) {
    return {
      attack,
      grpcStatus: undefined,
      httpStatus: undefined,
      note: `client stopped: ${(err as Error).message}`,
    };
  } finally {
    await new Promise((r) => setTimeout(r, 200));
    s.destroy();
  }
  return { attack, grpcStatus: undefined, httpStatus: undefined, note: `${opened} streams opened and reset` };
}

/**
 * Every malformed-protocol attack once against one server: garbage and slow bytes on TCP, bad HTTP/2
 * frames, and gRPC requests whose framing, headers or compression are wrong. `path` is a real method.
 */
export function frameAttacks(port: number, path: string, rng: Random): Array<() => Promise<FrameOutcome>> {
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const valid = grpcFrame(Buffer.alloc(0));
  return [
    () => tcpAttack(port, 'tcp: random bytes', [rng.bytes(1 + rng.int(65_536))]),
    () => tcpAttack(port, 'tcp: half a preface, then silence', [PREFACE.subarray(0, 10)], 1000),
    () => tcpAttack(port, 'tcp: HTTP/1.1 request', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]),
    () =>
      tcpAttack(port, 'h2: preface then random frames', [
        PREFACE,
        frame(4, 0, 0, Buffer.alloc(0)),
        ...Array.from({ length: 20 }, () =>
          frame(rng.int(12), rng.int(256), rng.int(50), rng.bytes(rng.int(64))),
        ),
      ]),
    () =>
      tcpAttack(port, 'h2: HEADERS with a broken HPACK block', [
        PREFACE,
        frame(4, 0, 0, Buffer.alloc(0)),
        frame(1, 0x5, 1, rng.bytes(40)),
      ]),
    () =>
      tcpAttack(port, 'h2: frame larger than SETTINGS_MAX_FRAME_SIZE', [
        PREFACE,
        frame(4, 0, 0, Buffer.alloc(0)),
        frame(0, 0, 1, Buffer.alloc(70_000)),
      ]),
    () =>
      h2Request(port, 'grpc: compressed flag without grpc-encoding', { ':path': path }, [
        grpcFrame(rng.bytes(20), { compressed: true }),
      ]),
    () =>
      h2Request(port, 'grpc: gzip declared, garbage sent', { ':path': path, 'grpc-encoding': 'gzip' }, [
        grpcFrame(rng.bytes(64), { compressed: true }),
      ]),
    () =>
      h2Request(port, 'grpc: unknown grpc-encoding', { ':path': path, 'grpc-encoding': 'zstd-9000' }, [
        valid,
      ]),
    () =>
      h2Request(port, 'grpc: length prefix 4 GiB, 10 bytes sent', { ':path': path }, [
        grpcFrame(rng.bytes(10), { declaredLength: 0xffffffff }),
      ]),
    () =>
      h2Request(port, 'grpc: message of 9 MiB (above the 8 MiB limit)', { ':path': path }, [
        grpcFrame(Buffer.alloc(9 * 1024 * 1024)),
      ]),
    () => h2Request(port, 'grpc: truncated frame header', { ':path': path }, [Buffer.from([0, 0, 0])]),
    () =>
      h2Request(
        port,
        'grpc: frame cut short, stream reset',
        { ':path': path },
        [grpcFrame(rng.bytes(100), { declaredLength: 1000 })],
        { resetAfterMs: 20 },
      ),
    () =>
      h2Request(
        port,
        'grpc: body never ends',
        { ':path': path },
        [grpcFrame(rng.bytes(100), { declaredLength: 1000 })],
        { endStream: false },
      ),
    () =>
      h2Request(port, 'grpc: unknown method', { ':path': '/backplane.nothing.v1.Nothing/Nothing' }, [valid]),
    () => h2Request(port, 'grpc: path without a method', { ':path': '/' }, [valid]),
    () =>
      h2Request(port, 'http: wrong content-type', { ':path': path, 'content-type': 'text/plain' }, [valid]),
    () =>
      h2Request(port, 'http: GET instead of POST', { ':path': path, ':method': 'GET' }, [], {
        endStream: true,
      }),
    () => h2Request(port, 'grpc: malformed grpc-timeout', { ':path': path, 'grpc-timeout': 'abcS' }, [valid]),
    () => h2Request(port, 'grpc: grpc-timeout of 0', { ':path': path, 'grpc-timeout': '0n' }, [valid]),
    () =>
      h2Request(port, 'grpc: enormous grpc-timeout', { ':path': path, 'grpc-timeout': '99999999H' }, [valid]),
    () =>
      h2Request(port, 'grpc: 60 KiB of metadata', { ':path': path, 'x-junk': 'j'.repeat(60_000) }, [valid]),
    () =>
      h2Request(
        port,
        'grpc: binary metadata that is not base64',
        { ':path': path, 'x-junk-bin': '!!!not base64!!!' },
        [valid],
      ),
    () =>
      h2Request(
        port,
        'grpc: authorization header of garbage',
        { ':path': path, authorization: `Bearer ${'\u00ff'.repeat(10)}x` },
        [valid],
      ),
    () => floodAttack(port, path, 'h2: 2000 streams opened and reset, ping and settings floods'),
  ];
}
