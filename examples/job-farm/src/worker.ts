// A worker: takes jobs from the tuple space inside a transaction, reads the job's input from its depot by
// the read-only capability in the tuple, stores its output in a depot, and writes the result tuple in the
// same transaction. If the worker dies mid-job, the transaction is aborted when it goes idle and the job
// tuple is back in the space for another worker: nothing is lost and nothing is done twice.
import { template, tuple, values } from '@backplane/tuplespace-client';
import { status } from '@grpc/grpc-js';
import { connectBackplane, FARM, increment, sleep } from './backplane';

const NAME = process.env.WORKER_NAME ?? `worker-${process.pid}`;
/** How long a job takes (the farm's stand-in for real work). */
const WORK_MS = Number(process.env.WORK_MS ?? 300);
/** A transaction unused this long is aborted by the server: how soon a dead worker's job comes back. */
const TXN_IDLE_MS = Number(process.env.TXN_IDLE_MS ?? 1500);

/** The work itself: a word count and the text upper-cased. */
function work(input: string): string {
  const words = input.split(/\s+/).filter(Boolean).length;
  return `${words} words: ${input.toUpperCase()}`;
}

async function main(): Promise<void> {
  const bp = await connectBackplane();
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
  });
  console.log(`${NAME} ready`);
  while (!stopping) {
    const txn = await bp.ts.begin({ idleTimeoutMs: TXN_IDLE_MS });
    let rec: Awaited<ReturnType<typeof bp.jobs.waitToTake>>;
    try {
      rec = await bp.jobs.waitToTake(template('job', Number, String, String), { txn, timeoutMs: 1000 });
    } catch (err) {
      await txn.abort().catch(() => undefined);
      if ((err as { code?: number }).code === status.DEADLINE_EXCEEDED) continue;
      throw err;
    }
    const [id, owner, inputCap] = values(rec.tuple).slice(1) as [bigint | number, string, string];
    console.log(`${NAME} took job ${id}`);
    const input = (await bp.ibp.read(inputCap)).toString();
    await sleep(WORK_MS);
    const output = await bp.ibp.allocate(4096, { reliability: 'STABLE', data: Buffer.from(work(input)) });
    // the result names a read-only capability that cannot be used to change the output
    const outputCap = await bp.ibp.derive(output.readCap);
    await bp.jobs.write(tuple('result', Number(id), owner, outputCap, NAME), { txn });
    await txn.commit();
    console.log(`${NAME} finished job ${id}`);
    await increment(bp.props, FARM.completed);
    await bp.events.publish(FARM.progress, `job ${id} of ${owner} done by ${NAME}`);
  }
  bp.close();
}

main().catch((err: unknown) => {
  console.error(`${NAME} failed:`, err);
  process.exit(1);
});
