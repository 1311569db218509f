import { type CallsRequest, type CallsResponse, PipelineServiceClient } from '@backplane/proto/pipeline';
import {
  type Client,
  type ClientDuplexStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type CallOptions, deadlineOf, type UnaryMethod, unary } from './client';
import { BackplaneError } from './errors';
import { MAX_BATCH_BYTES, withMore } from './pipeline-batch';
import { addEntries } from './pipeline-metadata';
import { TurnBatch } from './turn-batch';

/** What the pipeline needs of a ts-proto method definition (e.g. `SharingServiceService.get`). */
export interface PipelinedMethod<Req, Res> {
  readonly path: string;
  readonly requestStream: false;
  readonly responseStream: false;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

export interface CallPipelineOptions {
  /** An idle stream (no call in progress) is ended after this long, so it keeps no process alive. */
  idleMs?: number;
  /** Streams at most (one per distinct call metadata); calls with other metadata go as plain unary calls. */
  maxStreams?: number;
}

const EMPTY = Buffer.alloc(0);

/** Requests larger than this are sent as plain unary calls. */
export const MAX_PIPELINED_REQUEST = 1024 * 1024;

interface Pending {
  resolve(response: Buffer): void;
  reject(err: unknown): void;
  /** Sends the call again as a plain unary call (the server has no pipeline). */
  fallback(): void;
}

/** A ServiceError as grpc-js would report it, so BackplaneError.from maps it the same way. */
function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

/** One Calls stream: the calls in progress on it, by id. */
class CallStream {
  readonly pending = new Map<number, Pending>();
  /** Calls and cancels of this turn, not sent yet. */
  private readonly batch = new TurnBatch<CallsRequest>((requests) => {
    if (!this.ended) this.call.write(withMore(requests));
  }, MAX_BATCH_BYTES);
  private idleTimer: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    private readonly call: ClientDuplexStream<CallsRequest, CallsResponse>,
    private readonly idleMs: number,
    private readonly onEnd: (stream: CallStream, err: ServiceError | undefined) => void,
  ) {
    call.on('data', (r: CallsResponse) => this.answered(r));
    call.on('error', (err: ServiceError) => this.finish(err));
    call.on('end', () => this.finish(undefined));
  }

  /** The call is sent with the others made in this turn of the event loop, in one message. */
  send(req: CallsRequest, pending: Pending): void {
    this.pending.set(req.id, pending);
    this.batch.push(req, req.request.length + req.method.length + 16);
  }

  cancel(id: number): void {
    if (!this.pending.delete(id)) return;
    // a call not sent yet is simply not sent
    if (!this.batch.remove((r) => r.id === id && !r.cancel) && !this.ended)
      this.batch.push({ id, method: '', request: EMPTY, timeoutMs: 0, cancel: true, metadata: {}, more: [] });
    this.maybeIdle();
  }

  private answered(message: CallsResponse): void {
    this.answer(message);
    for (const r of message.more) this.answer(r);
  }

  private answer(r: CallsResponse): void {
    const p = this.pending.get(r.id);
    if (!p) return; // cancelled or timed out here already
    this.pending.delete(r.id);
    if (r.code === status.OK) p.resolve(r.response);
    else
      p.reject(BackplaneError.from(serviceError(r.code, r.message, addEntries(new Metadata(), r.metadata))));
    this.maybeIdle();
  }

  private maybeIdle(): void {
    if (this.pending.size > 0 || this.idleTimer || this.ended) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.pending.size > 0 || this.ended) return;
      this.ended = true;
      this.onEnd(this, undefined);
      this.call.end();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  /** The stream is gone: its calls fail with its error (or are re-sent as plain calls when it was UNIMPLEMENTED). */
  private finish(err: ServiceError | undefined): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.batch.clear();
    // the server is done with the stream: end our side too, so the HTTP/2 stream closes (a server that is
    // shutting down waits for that)
    if (!this.call.writableEnded) this.call.end();
    const wasEnded = this.ended;
    this.ended = true;
    if (!wasEnded) this.onEnd(this, err);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      if (err?.code === status.UNIMPLEMENTED) p.fallback();
      else
        p.reject(
          BackplaneError.from(
            err ?? serviceError(status.UNAVAILABLE, 'the call stream ended before the call was answered'),
          ),
        );
    }
  }

  close(): void {
    this.call.cancel();
  }
}

/**
 * Sends unary calls as messages of one backplane.pipeline.v1 Calls stream per distinct metadata, over
 * the channel of an existing client, instead of one HTTP/2 stream per call. Each call keeps the unary
 * call's behaviour: its deadline, its cancellation signal, its status and reason. A server without the
 * pipeline (UNIMPLEMENTED) gets plain unary calls from then on.
 */
export class CallPipeline {
  private readonly rpc: PipelineServiceClient;
  private readonly streams = new Map<string, CallStream>();
  private readonly keys = new WeakMap<Metadata, string>();
  private readonly idleMs: number;
  private readonly maxStreams: number;
  private supported = true;
  private closed = false;
  private nextId = 1;

  constructor(client: Client, options: CallPipelineOptions = {}) {
    const channel = client.getChannel();
    this.rpc = new PipelineServiceClient(channel.getTarget(), credentials.createInsecure(), {
      channelOverride: channel,
    });
    this.idleMs = options.idleMs ?? 50;
    this.maxStreams = options.maxStreams ?? 8;
  }

  /** Calls `method` through the pipeline; `plain` is the same method of the grpc-js client, for a server without one. */
  unary<Req, Res>(
    method: PipelinedMethod<Req, Res>,
    plain: UnaryMethod<Req, Res>,
    request: Req,
    opts: CallOptions = {},
  ): Promise<Res> {
    const signal = opts.signal;
    const deadline = deadlineOf(opts);
    const timeoutMs = deadline === undefined ? 0 : Math.ceil(deadline - Date.now());
    // a call cancelled or out of time before it starts fails as a plain call does; a big request goes on
    // its own (near the server's message limit its wrapping would fail the whole stream, every call on
    // it, and it would hold the stream's window meanwhile). Neither opens a stream.
    let payload: Buffer | undefined;
    try {
      payload =
        this.supported && !this.closed && !signal?.aborted && (deadline === undefined || timeoutMs > 0)
          ? method.requestSerialize(request)
          : undefined;
    } catch (err) {
      // e.g. a fraction where the message has an integer: the caller's mistake, said as such
      return Promise.reject(
        BackplaneError.badParameter(`the request could not be encoded: ${(err as Error).message}`),
      );
    }
    const stream =
      payload && payload.length <= MAX_PIPELINED_REQUEST ? this.streamFor(opts.metadata) : undefined;
    if (!payload || !stream) return unary(plain, request, opts);
    return new Promise<Res>((resolve, reject) => {
      const id = this.nextId++;
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const giveUp = (code: status, details: string) => {
        done();
        stream.cancel(id);
        reject(BackplaneError.from(serviceError(code, details)));
      };
      const onAbort = () => giveUp(status.CANCELLED, 'Cancelled on client');
      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined)
        timer = setTimeout(() => giveUp(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), timeoutMs);
      stream.send(
        {
          id,
          method: method.path,
          request: payload,
          timeoutMs,
          cancel: false,
          metadata: {},
          more: [],
        },
        {
          resolve: (bytes) => {
            done();
            try {
              resolve(method.responseDeserialize(bytes));
            } catch (err) {
              reject(
                BackplaneError.of('INTERNAL', `the answer could not be decoded: ${(err as Error).message}`),
              );
            }
          },
          reject: (err) => {
            done();
            reject(err);
          },
          fallback: () => {
            done();
            unary(plain, request, opts).then(resolve, reject);
          },
        },
      );
    });
  }

  /** Ends every stream; later calls go as plain unary calls. */
  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
  }

  private keyOf(metadata: Metadata | undefined): string {
    if (!metadata) return '';
    let key = this.keys.get(metadata);
    if (key === undefined) {
      key = JSON.stringify(metadata.toJSON());
      this.keys.set(metadata, key);
    }
    return key;
  }

  private streamFor(metadata: Metadata | undefined): CallStream | undefined {
    const key = this.keyOf(metadata);
    const open = this.streams.get(key);
    if (open && !open.ended) return open;
    if (this.streams.size >= this.maxStreams) return undefined;
    const stream = new CallStream(this.rpc.calls(metadata ?? new Metadata()), this.idleMs, (s, err) => {
      if (this.streams.get(key) === s) this.streams.delete(key);
      if (err?.code === status.UNIMPLEMENTED) this.supported = false;
    });
    this.streams.set(key, stream);
    return stream;
  }
}

/** A unary call through `pipeline`, or as a plain unary call when there is none (the client turned it off). */
export function pipelinedUnary<Req, Res>(
  pipeline: CallPipeline | undefined,
  method: PipelinedMethod<Req, Res>,
  plain: UnaryMethod<Req, Res>,
  request: Req,
  opts?: CallOptions,
): Promise<Res> {
  return pipeline ? pipeline.unary(method, plain, request, opts) : unary(plain, request, opts);
}
