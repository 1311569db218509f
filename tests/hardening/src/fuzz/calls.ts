import { type Client, type ClientDuplexStream, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { FuzzMethod } from './schema';

/** How a call ended. */
export interface Outcome {
  code: status;
  details: string;
  /** The `backplane-reason` trailer, when the server sent one. */
  reason: string | undefined;
  responses: number;
}

export interface CallPlan {
  messages: Buffer[];
  /** ms from now; 0 = a deadline that has already passed. */
  deadlineMs: number;
  metadata?: Metadata;
  /** Cancel a streaming call after this many ms (a client going away), before its deadline. */
  cancelAfterMs?: number;
}

export const identity = (b: Buffer): Buffer => b;
/** Streams are cut after this many responses: a watch of a busy space would otherwise never end. */
const MAX_RESPONSES = 50;

export function outcomeOf(
  code: status,
  details: string,
  metadata: Metadata | undefined,
  responses: number,
): Outcome {
  const reason = metadata?.get('backplane-reason')[0];
  return { code, details, reason: reason === undefined ? undefined : String(reason), responses };
}

/** Sends raw request bytes to any method (of any kind) and reports how the call ended. */
export function rawCall(client: Client, method: FuzzMethod, plan: CallPlan): Promise<Outcome> {
  const metadata = plan.metadata ?? new Metadata();
  const options = { deadline: Date.now() + plan.deadlineMs };
  const first = plan.messages[0] ?? Buffer.alloc(0);
  return new Promise<Outcome>((resolve) => {
    let responses = 0;
    let settled = false;
    const finish = (o: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const onStatus = (s: { code: status; details: string; metadata: Metadata }) =>
      finish(outcomeOf(s.code, s.details, s.metadata, responses));
    const onError = (err: ServiceError) => finish(outcomeOf(err.code, err.details, err.metadata, responses));

    if (method.kind === 'unary') {
      client.makeUnaryRequest(method.path, identity, identity, first, metadata, options, (err) => {
        if (err) onError(err);
        else finish({ code: status.OK, details: '', reason: undefined, responses: 1 });
      });
      return;
    }
    if (method.kind === 'client_streaming') {
      const call = client.makeClientStreamRequest(
        method.path,
        identity,
        identity,
        metadata,
        options,
        (err) => {
          if (err) onError(err);
          else finish({ code: status.OK, details: '', reason: undefined, responses: 1 });
        },
      );
      for (const m of plan.messages) call.write(m);
      call.end();
      return;
    }
    const call =
      method.kind === 'server_streaming'
        ? client.makeServerStreamRequest(method.path, identity, identity, first, metadata, options)
        : client.makeBidiStreamRequest(method.path, identity, identity, metadata, options);
    call.on('data', () => {
      responses += 1;
      if (responses >= MAX_RESPONSES) call.cancel();
    });
    call.on('error', () => undefined);
    call.on('status', onStatus);
    if (method.kind === 'bidi_streaming') {
      const duplex = call as ClientDuplexStream<Buffer, Buffer>;
      for (const m of plan.messages) duplex.write(m);
      // half the time the client keeps its side open, as a session would, until the deadline or cancel
      if (plan.messages.length % 2 === 0) duplex.end();
    }
    if (plan.cancelAfterMs !== undefined) setTimeout(() => call.cancel(), plan.cancelAfterMs).unref();
  });
}
