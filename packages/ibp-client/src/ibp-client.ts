import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import {
  BackplaneError,
  type CallOptions,
  CallPipeline,
  crc32Combine,
  type PipelinedMethod,
  pipelinedUnary,
  RECONNECT_OPTIONS,
  serverStream,
  type UnaryMethod,
  unary,
} from '@backplane/client-core';
import {
  AllocationType,
  type CapSet,
  CapType,
  type DepotServiceClient,
  FastDepotServiceClient,
  FastDepotServiceService,
  ManageCommand,
  type ManageResponse,
  Reliability,
  type StatusResponse,
} from '@backplane/proto/ibp';
import { type ChannelCredentials, credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';

export type { CapSet, ManageResponse, StatusResponse } from '@backplane/proto/ibp';

export const DEFAULT_DEPOT = '127.0.0.1:6714';
/** Bytes per Store message. */
export const CHUNK_SIZE = 1024 * 1024;
/** Buffers up to this size are stored with one StoreSmall call, and reads up to it use one ReadSmall call. */
export const SMALL_MAX = 1024 * 1024;

export type AreaType = 'BYTE_ARRAY' | 'BUFFER' | 'FIFO' | 'CIRCULAR_QUEUE';

export interface AllocateOptions {
  type?: AreaType;
  reliability?: 'STABLE' | 'VOLATILE';
  /** When the area is purged: a Date, seconds from now (a number), or 0 / undefined for permanent. */
  duration?: Date | number;
  /**
   * Initial contents, stored in the same call (one round trip for a small object). If they cannot be
   * stored, nothing is allocated.
   */
  data?: Buffer;
}

export interface TransferOptions extends CallOptions {
  /** Called as bytes move: (done, total). */
  onProgress?: (done: number, total: number) => void;
}

const TYPES: Record<AreaType, AllocationType> = {
  BYTE_ARRAY: AllocationType.ALLOCATION_TYPE_BYTE_ARRAY,
  BUFFER: AllocationType.ALLOCATION_TYPE_BUFFER,
  FIFO: AllocationType.ALLOCATION_TYPE_FIFO,
  CIRCULAR_QUEUE: AllocationType.ALLOCATION_TYPE_CIRCULAR_QUEUE,
};

/** host:port of the depot a capability belongs to. */
export function depotOf(cap: string): string {
  const m = /^ibp:\/\/(\[[^\]]+\]|[^/:[\]]+):(\d+)\//.exec(cap);
  if (!m) throw BackplaneError.badParameter('not an IBP capability (ibp://host:port/…)');
  return `${m[1]}:${m[2]}`;
}

async function* bufferChunks(data: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += CHUNK_SIZE) yield data.subarray(i, i + CHUNK_SIZE);
}

/**
 * Talks to any number of depots: each capability names its depot, and one channel per depot is kept.
 * Failures reject with BackplaneError (reason = the IBP error name where there is one).
 */
export class IbpClient {
  private readonly clients = new Map<string, DepotServiceClient>();
  private readonly credentials: ChannelCredentials;
  private readonly token: string | undefined;
  private readonly tokenDepots: Set<string>;
  private readonly addresses = new WeakMap<DepotServiceClient, string>();
  private readonly pipelines = new WeakMap<DepotServiceClient, CallPipeline>();
  private readonly pipelined: boolean;
  /** The depot used by allocate() and status() when none is given. */
  readonly depot: string;

  constructor(
    options: {
      depot?: string;
      credentials?: ChannelCredentials;
      token?: string;
      /** Other depots (host:port) that may receive the token. */
      tokenDepots?: string[];
      /**
       * Send small calls (allocate, small stores and reads, manage) as messages of one stream per depot
       * (default true) instead of one HTTP/2 stream each: several times the calls per second when many are
       * in flight. Each call keeps its own deadline, cancellation and status.
       */
      pipeline?: boolean;
    } = {},
  ) {
    this.pipelined = options.pipeline !== false;
    this.depot = options.depot ?? process.env.BACKPLANE_IBP_DEPOT ?? DEFAULT_DEPOT;
    this.credentials = options.credentials ?? grpcCredentials.createInsecure();
    this.token = options.token;
    this.tokenDepots = new Set(options.tokenDepots ?? []);
  }

  private client(address: string): DepotServiceClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new FastDepotServiceClient(address, this.credentials, {
        ...RECONNECT_OPTIONS,
        'grpc.max_receive_message_length': 8 * 1024 * 1024,
        // a 16 MiB receive window: with Node's 64 KiB default, 1 MiB chunks stall on window updates
        'grpc-node.flow_control_window': 16 * 1024 * 1024,
      });
      this.clients.set(address, c);
      this.addresses.set(c, address);
      if (this.pipelined) this.pipelines.set(c, new CallPipeline(c));
    }
    return c;
  }

  /**
   * Call options for a call to `c`. The bearer token goes only to this client's own depot and the depots
   * listed in `tokenDepots`: a capability can name any host, and must not be a way to collect tokens.
   */
  private opts(c: DepotServiceClient, o: CallOptions = {}): CallOptions {
    const address = this.addresses.get(c) ?? '';
    if (!this.token || (address !== this.depot && !this.tokenDepots.has(address))) return o;
    const metadata = o.metadata?.clone() ?? new Metadata();
    metadata.set('authorization', `Bearer ${this.token}`);
    return { ...o, metadata };
  }

  /** A unary call to the depot of `c`, through its call pipeline unless that is off. */
  private call<Req, Res>(
    c: DepotServiceClient,
    method: PipelinedMethod<Req, Res>,
    plain: UnaryMethod<Req, Res>,
    request: Req,
    o?: CallOptions,
  ): Promise<Res> {
    return pipelinedUnary(this.pipelines.get(c), method, plain, request, this.opts(c, o));
  }

  /** IBP_allocate on `depot` (default: this client's depot). */
  async allocate(
    size: number,
    options: AllocateOptions = {},
    depot = this.depot,
    call?: CallOptions,
  ): Promise<CapSet> {
    const d = options.duration;
    const duration =
      d === undefined || d === 0
        ? 0
        : d instanceof Date
          ? Math.floor(d.getTime() / 1000)
          : Math.floor(Date.now() / 1000 + d);
    const c = this.client(depot);
    const data = options.data;
    const crc = data ? crc32(data) : undefined;
    const res = await this.call(
      c,
      FastDepotServiceService.allocate,
      c.allocate.bind(c),
      {
        size,
        data,
        crc32: crc,
        attributes: {
          duration,
          reliability:
            options.reliability === 'VOLATILE'
              ? Reliability.RELIABILITY_VOLATILE
              : Reliability.RELIABILITY_STABLE,
          type: TYPES[options.type ?? 'BYTE_ARRAY'],
        },
      },
      call,
    );
    if (!res.caps) throw BackplaneError.unavailable('the depot sent no capabilities');
    if (data && res.stored?.crc32 !== crc) {
      throw BackplaneError.of(
        'DATA_LOSS',
        `the depot stored the initial data with CRC-32 ${res.stored?.crc32}; ${crc} was sent`,
      );
    }
    return res.caps;
  }

  /** A Buffer of at most SMALL_MAX bytes: one StoreSmall call. */
  private async storeSmall(writeCap: string, data: Buffer, options: TransferOptions) {
    const c = this.client(depotOf(writeCap));
    const crc = crc32(data);
    const res = await this.call(
      c,
      FastDepotServiceService.storeSmall,
      c.storeSmall.bind(c),
      { writeCap, data, crc32: crc },
      options,
    );
    if (res.crc32 !== crc) {
      throw BackplaneError.of(
        'DATA_LOSS',
        `the depot stored bytes with CRC-32 ${res.crc32}; ${crc} was sent`,
      );
    }
    options.onProgress?.(data.length, data.length);
    return { stored: Number(res.stored), currentSize: Number(res.currentSize) };
  }

  /** One ReadSmall call; undefined when the read is larger than one message may carry. */
  private async readSmall(
    readCap: string,
    options: { offset?: number; size?: number } & CallOptions,
  ): Promise<Buffer | undefined> {
    const c = this.client(depotOf(readCap));
    try {
      const r = await this.call(
        c,
        FastDepotServiceService.readSmall,
        c.readSmall.bind(c),
        { readCap, offset: options.offset ?? 0, size: options.size ?? -1 },
        options,
      );
      if (crc32(r.data) !== r.crc32) {
        throw BackplaneError.of('DATA_LOSS', 'the bytes read from the depot do not match their CRC-32');
      }
      return r.data;
    } catch (err) {
      if (err instanceof BackplaneError && err.reason === 'READ_TOO_LARGE') return undefined;
      throw err;
    }
  }

  /**
   * IBP_store from a Buffer, a file path, or a Readable (whose length must be given as `size`).
   * Resolves once the depot acknowledged every byte (STABLE data is then on its disk).
   */
  async store(
    writeCap: string,
    source: Buffer | string | Readable,
    options: TransferOptions & { size?: number } = {},
  ): Promise<{ stored: number; currentSize: number }> {
    let size: number;
    let chunks: AsyncIterable<Buffer>;
    if (Buffer.isBuffer(source) && source.length <= SMALL_MAX) {
      return this.storeSmall(writeCap, source, options);
    }
    if (Buffer.isBuffer(source)) {
      size = source.length;
      chunks = bufferChunks(source);
    } else if (typeof source === 'string') {
      size = (await stat(source)).size;
      chunks = createReadStream(source, { highWaterMark: CHUNK_SIZE });
    } else {
      if (options.size === undefined)
        throw BackplaneError.badParameter('storing a stream needs its size (options.size)');
      size = options.size;
      chunks = source as AsyncIterable<Buffer>;
    }
    const c = this.client(depotOf(writeCap));
    const o = this.opts(c, options);
    const deadline =
      o.deadline ?? (o.timeoutMs !== undefined ? new Date(Date.now() + o.timeoutMs) : undefined);
    let sent = 0;
    let settled = false;
    let onAbort: (() => void) | undefined;
    const result = new Promise<{ stored: number; currentSize: number }>((resolve, reject) => {
      const call = c.store(o.metadata ?? new Metadata(), deadline ? { deadline } : {}, (err, res) => {
        settled = true;
        if (err) reject(BackplaneError.from(err));
        else if (res.crc32 !== sent) {
          reject(
            BackplaneError.of(
              'DATA_LOSS',
              `the depot stored bytes with CRC-32 ${res.crc32}; ${sent} was sent`,
            ),
          );
        } else resolve({ stored: Number(res.stored), currentSize: Number(res.currentSize) });
      });
      onAbort = () => call.cancel();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const pump = async () => {
        let first = true;
        let done = 0;
        for await (const chunk of chunks) {
          // the depot answered early (it refused the store): stop reading the source
          if (settled) return;
          // the first message carries the capability, the size and the first chunk (a small store is one
          // message); every chunk carries its CRC-32, and the depot refuses a store with a damaged one
          const crc = crc32(chunk);
          sent = chunk.length >= 65536 ? crc32Combine(sent, crc, chunk.length) : crc32(chunk, sent);
          const msg = first
            ? { writeCap, size, data: chunk, crc32: crc }
            : { writeCap: '', size: 0, data: chunk, crc32: crc };
          first = false;
          if (!call.write(msg)) {
            // wait for room, or for the depot's answer (after a refusal no drain comes)
            await Promise.race([
              new Promise<void>((r) => call.once('drain', () => r())),
              result.catch(() => undefined),
            ]);
          }
          done += chunk.length;
          options.onProgress?.(done, size);
        }
        if (first) call.write({ writeCap, size, data: Buffer.alloc(0) });
        call.end();
      };
      pump().catch((err: unknown) => {
        call.cancel();
        reject(BackplaneError.from(err));
      });
    });
    try {
      return await result;
    } finally {
      if (onAbort) options.signal?.removeEventListener('abort', onAbort);
      // a file source must not stay open after a refused or failed store
      if (typeof source === 'string') (chunks as Readable).destroy();
    }
  }

  /** The chunks of an IBP_read, as they arrive, each checked against its CRC-32. */
  async *readChunks(
    readCap: string,
    options: { offset?: number; size?: number } & CallOptions = {},
  ): AsyncGenerator<Buffer> {
    const c = this.client(depotOf(readCap));
    for await (const r of serverStream(
      c.read.bind(c),
      { readCap, offset: options.offset ?? 0, size: options.size ?? -1 },
      this.opts(c, options),
    )) {
      if (crc32(r.data) !== r.crc32) {
        throw BackplaneError.of('DATA_LOSS', 'a chunk read from the depot does not match its CRC-32');
      }
      yield r.data;
    }
  }

  /** Re-checks the stored bytes of an area against the checksums recorded when they were stored. */
  async verify(
    readCap: string,
    call?: CallOptions,
  ): Promise<{ extents: number; bytes: number; corruptOffsets: number[] }> {
    const c = this.client(depotOf(readCap));
    const r = await unary(c.verify.bind(c), { readCap }, this.opts(c, call));
    return {
      extents: Number(r.extents),
      bytes: Number(r.bytes),
      corruptOffsets: r.corruptOffsets.map(Number),
    };
  }

  /** IBP_read into a Buffer, or into a Writable or a file (then resolves with the byte count). */
  read(readCap: string, options?: { offset?: number; size?: number } & TransferOptions): Promise<Buffer>;
  read(
    readCap: string,
    options: { offset?: number; size?: number } & TransferOptions,
    dest: Writable | string,
  ): Promise<number>;
  async read(
    readCap: string,
    options: { offset?: number; size?: number } & TransferOptions = {},
    dest?: Writable | string,
  ): Promise<Buffer | number> {
    let done = 0;
    const size = options.size ?? -1;
    if (dest === undefined && size <= SMALL_MAX) {
      // one call when it fits in one message; a larger read of "everything" falls back to streaming
      const small = await this.readSmall(readCap, options);
      if (small) {
        options.onProgress?.(small.length, size);
        return small;
      }
    }
    if (dest === undefined) {
      const parts: Buffer[] = [];
      for await (const chunk of this.readChunks(readCap, options)) {
        parts.push(chunk);
        done += chunk.length;
        options.onProgress?.(done, options.size ?? -1);
      }
      return Buffer.concat(parts);
    }
    const counted = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        done += chunk.length;
        options.onProgress?.(done, options.size ?? -1);
        yield chunk;
      }
    };
    // pipeline() handles errors on both sides (a failed read closes the file; a failed write ends the read);
    // a caller's own Writable is not ended
    const source = Readable.from(counted(this.readChunks(readCap, options)));
    if (typeof dest === 'string') await pipeline(source, createWriteStream(dest));
    else await pipeline(source, dest, { end: false });
    return done;
  }

  /** IBP_copy: the source depot sends straight to the target depot. */
  async copy(
    sourceReadCap: string,
    targetWriteCap: string,
    options: { offset?: number; size?: number } & CallOptions = {},
  ) {
    const c = this.client(depotOf(sourceReadCap));
    const r = await unary(
      c.copy.bind(c),
      { sourceReadCap, targetWriteCap, offset: options.offset ?? 0, size: options.size ?? -1 },
      this.opts(c, options),
    );
    return Number(r.copied);
  }

  /** IBP_deliver to a listener waiting at host:port. */
  async deliver(
    readCap: string,
    host: string,
    port: number,
    options: { offset?: number; size?: number } & CallOptions = {},
  ) {
    const c = this.client(depotOf(readCap));
    const r = await unary(
      c.deliver.bind(c),
      { readCap, host, port, offset: options.offset ?? 0, size: options.size ?? -1 },
      this.opts(c, options),
    );
    return Number(r.delivered);
  }

  /** IBP_remote_store: the depot pulls `size` bytes from host:port. */
  async remoteStore(writeCap: string, host: string, port: number, size: number, call?: CallOptions) {
    const c = this.client(depotOf(writeCap));
    const r = await unary(c.remoteStore.bind(c), { writeCap, host, port, size }, this.opts(c, call));
    return Number(r.stored);
  }

  /** IBP_manage. */
  manage(
    manageCap: string,
    command: 'INCR' | 'DECR' | 'PROBE' | 'CHNG',
    options: {
      capType?: 'READ' | 'WRITE';
      /** CHNG: new expiry in seconds since the epoch, 0 = permanent; leave out to keep it. */
      duration?: number;
      reliability?: 'STABLE' | 'VOLATILE';
      size?: number;
    } = {},
    call?: CallOptions,
  ): Promise<ManageResponse> {
    const c = this.client(depotOf(manageCap));
    const change = command === 'CHNG';
    return this.call(
      c,
      FastDepotServiceService.manage,
      c.manage.bind(c),
      {
        manageCap,
        command: ManageCommand[`MANAGE_COMMAND_${command}`],
        capType: options.capType ? CapType[`CAP_TYPE_${options.capType}`] : CapType.CAP_TYPE_UNSPECIFIED,
        attributes: change
          ? {
              duration: options.duration ?? -1, // -1 = unchanged
              reliability:
                options.reliability === 'VOLATILE'
                  ? Reliability.RELIABILITY_VOLATILE
                  : options.reliability === 'STABLE'
                    ? Reliability.RELIABILITY_STABLE
                    : Reliability.RELIABILITY_UNSPECIFIED,
              type: AllocationType.ALLOCATION_TYPE_UNSPECIFIED,
            }
          : undefined,
        size: options.size ?? 0,
      },
      call,
    );
  }

  /**
   * An attenuated read capability: only [offset, offset + length) (length -1 = to the end), and expiring
   * at `duration` (seconds since the epoch; 0 = with the area). Hand it out instead of the read capability.
   */
  async derive(
    readCap: string,
    options: { offset?: number; length?: number; duration?: number } = {},
    call?: CallOptions,
  ): Promise<string> {
    const c = this.client(depotOf(readCap));
    const r = await unary(
      c.derive.bind(c),
      { readCap, offset: options.offset ?? 0, length: options.length ?? -1, duration: options.duration ?? 0 },
      this.opts(c, call),
    );
    return r.readCap;
  }

  /** Revokes a derived capability (needs the area's manage capability). */
  async revoke(manageCap: string, derivedCap: string, call?: CallOptions): Promise<void> {
    const c = this.client(depotOf(manageCap));
    await unary(c.revoke.bind(c), { manageCap, derivedCap }, this.opts(c, call));
  }

  probe(manageCap: string, call?: CallOptions): Promise<ManageResponse> {
    return this.manage(manageCap, 'PROBE', {}, call);
  }

  status(depot = this.depot, call?: CallOptions): Promise<StatusResponse> {
    const c = this.client(depot);
    return unary(c.status.bind(c), {}, this.opts(c, call));
  }

  close(): void {
    for (const c of this.clients.values()) {
      this.pipelines.get(c)?.close();
      c.close();
    }
    this.clients.clear();
  }
}
