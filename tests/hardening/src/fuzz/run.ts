import { healthCheck, statusName } from '@backplane/runtime';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { protoPackageOf, type ServiceProcess } from '../services';
import { type Outcome, rawCall } from './calls';
import { dsPortAttacks } from './ds-ports';
import { prepareFixture } from './fixtures';
import { frameAttacks } from './frames';
import { MessageFuzzer } from './messages';
import { pipelinedCall } from './pipelined';
import { Random } from './random';
import { type FuzzMethod, methodsOf } from './schema';

/** The codes a well-formed (if hostile) request may get: ARCHITECTURE.md's vocabulary plus OK and CANCELLED. */
export const DOCUMENTED_CODES: ReadonlySet<status> = new Set([
  status.OK,
  status.CANCELLED,
  status.INVALID_ARGUMENT,
  status.DEADLINE_EXCEEDED,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.PERMISSION_DENIED,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNAUTHENTICATED,
  status.UNAVAILABLE,
]);

/**
 * Frames that break the gRPC or HTTP/2 protocol itself are answered by grpc-js before any handler runs, as
 * the gRPC spec says: INTERNAL for a broken frame or compression, UNIMPLEMENTED for an unknown method,
 * RESOURCE_EXHAUSTED for a message over the limit. Those codes are allowed for raw frames only.
 */
const PROTOCOL_CODES: ReadonlySet<number> = new Set([status.INTERNAL, status.UNIMPLEMENTED]);

export interface FuzzOptions {
  seed: number;
  /** How long to send requests to each service. */
  durationMs: number;
  /** Calls in flight at once. */
  concurrency: number;
}

export interface Finding {
  method: string;
  code: string;
  details: string;
  /** Replay: the seed and the input's index. */
  input: number;
}

export interface ServiceFuzzReport {
  service: string;
  inputs: number;
  frameAttacks: number;
  /** Inputs (counted in `inputs` too) sent through the server's call pipeline instead of their own call. */
  pipelined: number;
  /** Times the server closed the resetting connection for too many stream resets (its DoS protection). */
  rapidResetCloses: number;
  /** Inputs per method. */
  perMethod: Record<string, number>;
  /** Codes seen (name → count). */
  codes: Record<string, number>;
  findings: Finding[];
  processExits: number;
  rssBaselineKb: number;
  /** Halfway through the requests: growth from here to the end would be a leak. */
  rssMidKb: number;
  rssPeakKb: number;
  rssAfterKb: number;
  integrityProblems: string[];
}

/** A finding when the answer is outside the vocabulary, or an error from the server carries no reason. */
function judge(o: Outcome): string | undefined {
  if (!DOCUMENTED_CODES.has(o.code)) return `undocumented code ${statusName(o.code)}`;
  if (o.code === status.UNAVAILABLE && !o.reason) return 'UNAVAILABLE without a reason (connection lost?)';
  const local = o.code === status.OK || o.code === status.CANCELLED || o.code === status.DEADLINE_EXCEEDED;
  // grpc-js's own answer to an oversized message has no reason; so does a limit grpc-js enforces
  const grpcLimit = o.code === status.RESOURCE_EXHAUSTED && /larger than max/i.test(o.details);
  if (!local && !grpcLimit && !o.reason) return `${statusName(o.code)} without a backplane-reason`;
  return undefined;
}

function planFor(rng: Random, fuzzer: MessageFuzzer, method: FuzzMethod) {
  const count = method.kind === 'client_streaming' || method.kind === 'bidi_streaming' ? 1 + rng.int(4) : 1;
  const messages = Array.from({ length: count }, () => {
    const m = fuzzer.message(method.input);
    return rng.chance(0.08) ? fuzzer.mangle(m) : m;
  });
  const deadlineMs = rng.chance(0.05) ? 0 : rng.chance(0.1) ? 1 + rng.int(5) : 300 + rng.int(1200);
  const metadata = new Metadata();
  if (rng.chance(0.1))
    metadata.set('authorization', rng.pick(['Bearer x', 'Basic !!!', 'Basic YWRtaW46', '']));
  const streaming = method.kind !== 'unary';
  const cancelAfterMs = streaming && rng.chance(0.3) ? rng.int(200) : undefined;
  return { messages, deadlineMs, metadata, cancelAfterMs };
}

/** Fuzzes one running service: hostile requests to every method, raw frames, then the checks. */
export async function fuzzService(
  target: ServiceProcess,
  options: FuzzOptions,
  log: (line: string) => void = () => undefined,
): Promise<ServiceFuzzReport> {
  const rng = new Random(options.seed);
  const fixture = await prepareFixture(target);
  const fuzzer = new MessageFuzzer(rng, fixture.corpus);
  const methods = methodsOf(protoPackageOf(target.name));
  const channelOptions = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };
  const client = new Client(target.address, credentials.createInsecure(), channelOptions);
  // Calls that end in a reset (deadlines of a few ms, cancels) go on their own connection: HTTP/2 servers
  // close a connection that resets more than ~33 streams a second (nghttp2's rapid-reset limit), and
  // that must not disturb the other calls.
  const resetting = new Client(target.address, credentials.createInsecure(), {
    ...channelOptions,
    'grpc.use_local_subchannel_pool': 1,
  });
  const report: ServiceFuzzReport = {
    service: target.name,
    inputs: 0,
    frameAttacks: 0,
    pipelined: 0,
    rapidResetCloses: 0,
    perMethod: Object.fromEntries(methods.map((m) => [m.name, 0])),
    codes: {},
    findings: [],
    processExits: 0,
    rssBaselineKb: 0,
    rssMidKb: 0,
    rssPeakKb: 0,
    rssAfterKb: 0,
    integrityProblems: [],
  };
  const exitsBefore = target.unexpectedExits;
  const sample = () => {
    report.rssPeakKb = Math.max(report.rssPeakKb, target.rssKb());
  };
  report.rssBaselineKb = target.rssKb();
  const sampler = setInterval(sample, 200);
  try {
    // hostile requests, `concurrency` in flight, each method in turn so every one gets its share
    const until = Date.now() + options.durationMs;
    const mid = setTimeout(() => {
      report.rssMidKb = target.rssKb();
    }, options.durationMs / 2);
    let next = 0;
    const worker = async () => {
      while (Date.now() < until && target.alive()) {
        const index = next;
        next += 1;
        const method = methods[index % methods.length] as FuzzMethod;
        const plan = planFor(rng, fuzzer, method);
        const resets = plan.deadlineMs < 10 || plan.cancelAfterMs !== undefined;
        // a quarter of the unary calls go through the server's call pipeline instead, hostile extras included
        const pipelined = method.kind === 'unary' && rng.chance(0.25);
        if (pipelined && rng.chance(0.1)) plan.cancelAfterMs = rng.int(200);
        const o = pipelined
          ? await pipelinedCall(resets ? resetting : client, method, plan, rng)
          : await rawCall(resets ? resetting : client, method, plan);
        report.inputs += 1;
        if (resets && /Session closed with error code 2/.test(o.details)) {
          report.rapidResetCloses += 1;
          continue;
        }
        report.perMethod[method.name] = (report.perMethod[method.name] ?? 0) + 1;
        if (pipelined) report.pipelined += 1;
        report.codes[statusName(o.code)] = (report.codes[statusName(o.code)] ?? 0) + 1;
        const bad = target.alive() ? judge(o) : undefined;
        if (bad && report.findings.length < 200) {
          report.findings.push({
            method: method.name,
            code: bad,
            details: o.details.slice(0, 300),
            input: index,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    clearTimeout(mid);
    log(`${target.name}: ${report.inputs} requests`);

    // raw frames against one real method
    const path = (methods[0] as FuzzMethod).path;
    for (const attack of frameAttacks(target.port, path, rng)) {
      if (!target.alive()) break;
      const o = await attack().catch((err: Error) => ({
        attack: 'unknown',
        grpcStatus: undefined,
        httpStatus: undefined,
        note: err.message,
      }));
      report.frameAttacks += 1;
      if (
        o.grpcStatus !== undefined &&
        !DOCUMENTED_CODES.has(o.grpcStatus) &&
        !PROTOCOL_CODES.has(o.grpcStatus)
      ) {
        report.findings.push({
          method: o.attack,
          code: `grpc-status ${statusName(o.grpcStatus)}`,
          details: o.note,
          input: -1,
        });
      }
      const health = await healthCheck(target.address).catch((e: Error) => e.message);
      if (health !== 'SERVING') {
        report.findings.push({
          method: o.attack,
          code: 'not serving afterwards',
          details: String(health),
          input: -1,
        });
      }
    }
    if (target.name === 'ds-coordinator' && target.alive()) {
      // the coordinator's raw TCP ports (data, service, PROXY v1), which the gRPC fuzzing never reaches
      const raw = await dsPortAttacks(target, rng);
      report.frameAttacks += raw.attacks;
      report.findings.push(...raw.findings);
    }
    log(`${target.name}: ${report.frameAttacks} raw-frame attacks`);
  } finally {
    clearInterval(sampler);
    client.close();
    resetting.close();
  }
  report.processExits = target.unexpectedExits - exitsBefore;
  if (target.alive()) {
    // memory: give the server a quiet moment, then read it (V8 rarely returns pages, so "after" is a ceiling)
    await new Promise((r) => setTimeout(r, 1500));
    report.rssAfterKb = target.rssKb();
    report.integrityProblems = await fixture.verify();
  } else {
    report.integrityProblems = ['the process is gone'];
  }
  report.rssPeakKb = Math.max(report.rssPeakKb, target.peakRssKb());
  await fixture.close();
  return report;
}
