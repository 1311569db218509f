import {
  addEntries,
  BackplaneError,
  MAX_BATCH_BYTES,
  metadataEntries,
  TurnBatch,
  withMore,
} from '@backplane/client-core';
import type { CallsRequest, CallsResponse } from '@backplane/proto/pipeline';
import {
  type handleUnaryCall,
  type Metadata,
  type MethodDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { unlessAborted } from './abortable';
import type { BidiStreamHandler } from './handlers';

/** A unary method as served (wrapHandlers' grpc-js handler) and its definition (request decoder). */
export interface UnaryTarget {
  handler: handleUnaryCall<unknown, unknown>;
  method: MethodDefinition<unknown, unknown>;
}

/** Answer messages not yet handed to HTTP/2 beyond which a stream stops taking calls (a client that does not read). */
const MAX_UNSENT = 256;

/** Roughly what an answer adds to its message. */
function answerSize(r: CallsResponse): number {
  return r.response.length + r.message.length + 24;
}

/**
 * The call object a pipelined call hands to the served unary handler: what wrapHandlers reads of a grpc-js
 * call (request, metadata, peer, deadline, cancellation), so the call goes through the same checks,
 * limits and logging as the plain unary RPC.
 */
class PipelinedCall {
  cancelled = false;
  /** 'cancelled' listeners (wrapHandlers adds one when a handler looks at its signal). */
  private listeners: Array<() => void> | undefined;
  constructor(
    readonly request: unknown,
    readonly metadata: Metadata,
    private readonly peer: string,
    private readonly deadline: number,
    private readonly authority: string,
  ) {}
  getPeer(): string {
    return this.peer;
  }
  getHost(): string {
    return this.authority;
  }
  getDeadline(): number {
    return this.deadline;
  }
  once(_event: 'cancelled', listener: () => void): this {
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
    return this;
  }
  off(_event: 'cancelled', listener: () => void): this {
    this.listeners = this.listeners?.filter((l) => l !== listener);
    return this;
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const listeners = this.listeners ?? [];
    this.listeners = undefined;
    for (const l of listeners) l();
  }
}

function failure(id: number, code: status, message: string, metadata: Metadata | undefined): CallsResponse {
  return { id, code, message, metadata: metadataEntries(metadata), response: Buffer.alloc(0), more: [] };
}

/** An answer the pipeline itself gives (bad id, unknown method…), with its reason as a handler's error has. */
function refusal(id: number, err: BackplaneError): CallsResponse {
  const e = err.toServiceError();
  return failure(id, e.code, e.details, e.metadata);
}

/** The stream's metadata, plus the call's own entries. */
function callMetadata(stream: Metadata, extra: Record<string, string>): Metadata {
  return Object.keys(extra).length === 0 ? stream : addEntries(stream.clone(), extra);
}

/**
 * The handler of backplane.pipeline.v1.PipelineService/Calls: runs each call on the stream through the
 * served unary handler of its method, answers in the order the calls finish, cancels the calls in progress
 * when the stream goes away, and stops reading calls while the client does not read answers.
 */
export function pipelineHandler(
  targets: Map<string, UnaryTarget>,
): BidiStreamHandler<CallsRequest, CallsResponse> {
  return async (requests, sink, ctx) => {
    const calls = new Map<number, PipelinedCall>();
    let allAnswered: (() => void) | undefined;
    let unsent = 0;
    let lastSend: Promise<void> = Promise.resolve();
    const settled = () => {
      unsent--;
    };
    // the answers of one event-loop turn go out together, in one message (`more`)
    const batch = new TurnBatch<CallsResponse>((answers) => {
      const waiting = sink.sendWhileStopping(withMore(answers));
      if (!waiting) return; // taken at once (the usual case)
      unsent++;
      lastSend = waiting.then(settled, settled);
    }, MAX_BATCH_BYTES);
    const answer = (r: CallsResponse) => batch.push(r, answerSize(r));
    // the stream ends: a client that went away (or its deadline) cancels the calls in progress; on a
    // server shutdown they finish (they see the shutdown themselves) and are answered before the stream ends
    const signal = ctx.signal;
    const onAbort = () => {
      if (BackplaneError.from(signal.reason).code !== status.UNAVAILABLE) {
        for (const c of calls.values()) c.cancel();
      }
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const start = (req: CallsRequest) => {
      const id = req.id;
      if (req.cancel) {
        calls.get(id)?.cancel();
        return;
      }
      if (calls.has(id)) {
        answer(
          refusal(id, BackplaneError.badParameter(`call id ${id} is already in progress on this stream`)),
        );
        return;
      }
      const target = targets.get(req.method);
      if (!target) {
        answer(
          refusal(
            id,
            new BackplaneError(
              status.UNIMPLEMENTED,
              'UNIMPLEMENTED',
              `${req.method || '(no method)'} is not a unary method of this server`,
            ),
          ),
        );
        return;
      }
      let metadata: Metadata;
      try {
        metadata = callMetadata(ctx.metadata, req.metadata);
      } catch (err) {
        answer(refusal(id, BackplaneError.badParameter(`bad call metadata: ${(err as Error).message}`)));
        return;
      }
      let request: unknown;
      try {
        request = target.method.requestDeserialize(
          Buffer.isBuffer(req.request) ? req.request : Buffer.from(req.request),
        );
      } catch (err) {
        answer(
          refusal(
            id,
            BackplaneError.badParameter(`the request could not be decoded: ${(err as Error).message}`),
          ),
        );
        return;
      }
      const deadline = req.timeoutMs > 0 ? Date.now() + req.timeoutMs : Number.POSITIVE_INFINITY;
      const call = new PipelinedCall(request, metadata, ctx.peer, deadline, ctx.authority);
      calls.set(id, call);
      target.handler(call as never, (err: Partial<ServiceError> | null, value?: unknown) => {
        calls.delete(id);
        if (err)
          answer(failure(id, err.code ?? status.UNKNOWN, err.details ?? err.message ?? '', err.metadata));
        else {
          try {
            answer({
              id,
              code: status.OK,
              message: '',
              metadata: {},
              response: target.method.responseSerialize(value),
              more: [],
            });
          } catch (e) {
            answer(
              refusal(
                id,
                BackplaneError.of('INTERNAL', `the answer could not be encoded: ${(e as Error).message}`),
              ),
            );
          }
        }
        if (calls.size === 0) allAnswered?.();
      });
    };
    const it = requests[Symbol.asyncIterator]();
    for (;;) {
      const next = await unlessAborted(it.next(), signal).catch(() => undefined);
      if (!next || next.done) break;
      const req = next.value;
      start(req);
      for (const r of req.more) start(r);
      // a client that does not read its answers gets no more calls run until it does
      if (unsent > MAX_UNSENT) await unlessAborted(lastSend, signal);
    }
    // no more calls (the client ended its side, or the stream stops): the calls in progress finish first
    while (calls.size > 0) {
      await new Promise<void>((resolve) => {
        allAnswered = resolve;
      });
    }
    batch.flush();
    await lastSend;
    // a shutdown ends the stream as a finished one: every call on it was answered. (A stream that fails
    // while a read is pending is destroyed by Node before grpc-js sends its status, and the client would
    // wait for it until the server's forced shutdown.)
    if (signal.aborted && BackplaneError.from(signal.reason).code !== status.UNAVAILABLE) {
      throw BackplaneError.from(signal.reason);
    }
  };
}
