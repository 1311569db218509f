import { CallsRequest, CallsResponse, PipelineServiceService } from '@backplane/proto/pipeline';
import { type Client, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { type CallPlan, identity, type Outcome, outcomeOf } from './calls';
import type { Random } from './random';
import type { FuzzMethod } from './schema';

const CALLS = PipelineServiceService.calls.path;

/**
 * Sends a planned unary call through the server's call pipeline (backplane.pipeline.v1 Calls), with
 * hostile stream-level extras: a duplicate id, a cancel of the call, an unknown method, per-call metadata
 * with bad keys. Reports how the call itself ended (its answer on the stream), or the stream's status
 * when the stream failed before answering.
 */
export function pipelinedCall(
  client: Client,
  method: FuzzMethod,
  plan: CallPlan,
  rng: Random,
): Promise<Outcome> {
  const metadata = plan.metadata ?? new Metadata();
  const options = { deadline: Date.now() + Math.max(plan.deadlineMs, 1) + 2000 };
  const id = 1 + rng.int(2 ** 31);
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let responses = 0;
    // an answered call ends its side of the stream (the server then ends it after its other answers):
    // cancelling would reset a stream per call, and the server closes a connection that resets too many
    const finish = (o: Outcome, answered = false) => {
      if (settled) return;
      settled = true;
      if (!answered) call.cancel();
      else if (!call.writableEnded) call.end();
      resolve(o);
    };
    const call = client.makeBidiStreamRequest(CALLS, identity, identity, metadata, options);
    call.on('data', (b: Buffer) => {
      responses += 1;
      let r: CallsResponse;
      try {
        r = CallsResponse.decode(b);
      } catch {
        finish({ code: status.INTERNAL, details: 'undecodable CallsResponse', reason: 'FUZZER', responses });
        return;
      }
      // answers come several to a message; the others answer extras (unknown method, duplicate id)
      const mine = [r, ...r.more].find((a) => a.id === id);
      if (!mine) return;
      finish(
        {
          code: mine.code,
          details: mine.message,
          reason: mine.metadata['backplane-reason'],
          responses,
        },
        true,
      );
    });
    call.on('error', () => undefined);
    call.on('status', (s: { code: status; details: string; metadata: Metadata }) =>
      finish(outcomeOf(s.code, s.details, s.metadata, responses)),
    );
    const write = (r: Partial<CallsRequest>) =>
      call.write(Buffer.from(CallsRequest.encode(CallsRequest.fromPartial(r)).finish()));
    const extra: Record<string, string> = rng.chance(0.1)
      ? { [rng.pick(['x-fuzz', 'Bad Key', 'grpc-timeout', 'x-bin'])]: rng.pick(['', '\u0000', 'v', '%%%']) }
      : {};
    const main: Partial<CallsRequest> = {
      id,
      method: method.path,
      request: plan.messages[0] ?? Buffer.alloc(0),
      timeoutMs: plan.deadlineMs,
      metadata: extra,
    };
    // a quarter go as a further call of a message (`more`), behind an extra call or with nested `more`
    if (rng.chance(0.25)) {
      const head = { id: id + 2, method: rng.pick(['', '/x/y', method.path]), request: plan.messages[1] };
      write({
        ...head,
        more: [
          CallsRequest.fromPartial({
            ...main,
            more: rng.chance(0.5) ? [CallsRequest.fromPartial({ id: id + 3, method: CALLS })] : [],
          }),
        ],
      });
    } else write(main);
    if (rng.chance(0.1)) write({ id, method: method.path, request: plan.messages[0] ?? Buffer.alloc(0) });
    if (rng.chance(0.1)) write({ id: id + 1, method: rng.pick(['', '/x/y', `${method.path}x`, CALLS]) });
    if (rng.chance(0.1)) call.write(Buffer.from([0xff, 0xff, 0xff]));
    if (plan.cancelAfterMs !== undefined)
      setTimeout(() => {
        if (!settled) write({ id, cancel: true });
      }, plan.cancelAfterMs).unref();
    if (plan.cancelAfterMs === undefined && rng.chance(0.5)) call.end();
  }).catch((err: ServiceError) => ({
    code: err.code,
    details: err.details,
    reason: undefined,
    responses: 0,
  }));
}
