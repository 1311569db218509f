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
    const finish = (o: Outcome) => {
      if (settled) return;
      settled = true;
      call.cancel();
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
      if (r.id !== id) return; // the answer to an extra (unknown method, duplicate id)
      finish({ code: r.code, details: r.message, reason: r.metadata['backplane-reason'], responses });
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
    write({
      id,
      method: method.path,
      request: plan.messages[0] ?? Buffer.alloc(0),
      timeoutMs: plan.deadlineMs,
      metadata: extra,
    });
    if (rng.chance(0.1)) write({ id, method: method.path, request: plan.messages[0] ?? Buffer.alloc(0) });
    if (rng.chance(0.1)) write({ id: id + 1, method: rng.pick(['', '/x/y', `${method.path}x`, CALLS]) });
    if (rng.chance(0.1)) call.write(Buffer.from([0xff, 0xff, 0xff]));
    if (plan.cancelAfterMs !== undefined)
      setTimeout(() => write({ id, cancel: true }), plan.cancelAfterMs).unref();
    if (plan.cancelAfterMs === undefined && rng.chance(0.5)) call.end();
  }).catch((err: ServiceError) => ({
    code: err.code,
    details: err.details,
    reason: undefined,
    responses: 0,
  }));
}
