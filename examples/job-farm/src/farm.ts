// `pnpm example:job-farm`: the whole farm on this machine. It starts the backplane (`backplane up`), two
// front-end nodes behind the ds coordinator and a few workers, submits jobs as four TCP clients, kills a
// worker in the middle of a job, and prints what happened. Exit code 0 when every job was done exactly once.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startUp } from '@backplane/cli/dist/testing';
import { type SpawnedProcess, spawnProcess } from '@backplane/runtime/testing';
import { connectBackplane, FARM, sleep, where } from './backplane';
import { ownerNode } from './front-end';

const JOBS = Number(process.env.JOBS ?? 12);
const WORKERS = Number(process.env.WORKERS ?? 3);
const FRONT_NODES = ['front-a', 'front-b'];
const CANDIDATE_OWNERS = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jo'];

interface Done {
  id: number;
  worker: string;
  output: string;
}

/** One submitting client: HELLO, wait for WELCOME (from the owner's node), then jobs on the same socket. */
async function openClient(address: string, owner: string, localAddress: string) {
  const colon = address.lastIndexOf(':');
  const socket = connect({
    host: address.slice(0, colon),
    port: Number(address.slice(colon + 1)),
    localAddress,
  });
  const lines = createInterface({ input: socket });
  const queue: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else queue.push(line);
  });
  const next = (timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const line = queue.shift();
      if (line !== undefined) return resolve(line);
      const t = setTimeout(() => reject(new Error(`${owner}: no answer within ${timeoutMs} ms`)), timeoutMs);
      waiters.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  socket.write(`HELLO ${owner}\n`);
  const welcome = await next(20_000);
  const [word, , node] = welcome.split(' ');
  if (word !== 'WELCOME') throw new Error(`${owner}: expected WELCOME, got ${welcome}`);
  return {
    owner,
    node: node as string,
    async run(texts: string[]): Promise<Done[]> {
      for (const t of texts) socket.write(`JOB ${t}\n`);
      const done: Done[] = [];
      while (done.length < texts.length) {
        const line = await next(120_000);
        const m = /^DONE (\d+) (\S+) (.*)$/.exec(line);
        if (!m) throw new Error(`${owner}: unexpected ${line}`);
        done.push({ id: Number(m[1]), worker: m[2] as string, output: m[3] as string });
      }
      socket.end();
      return done;
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'job-farm-'));
  const procs: SpawnedProcess[] = [];
  const node = process.execPath;
  try {
    const up = await startUp({ dataDir: join(dir, 'data'), dsServices: [FARM.dsService] });
    procs.push(up.process);
    process.env.BACKPLANE_NAMESERVER = up.addresses['name-server'];
    console.log(`backplane up: name server at ${process.env.BACKPLANE_NAMESERVER}`);

    const fronts = FRONT_NODES.map((n) =>
      spawnProcess(node, [join(__dirname, 'front-end.js')], {
        env: { ...process.env, FRONT_NODE: n, FRONT_NODES: FRONT_NODES.join(',') },
      }),
    );
    procs.push(...fronts);
    await Promise.all(fronts.map((f) => f.waitForOutput(/ready at/, 30_000)));
    const workers = Array.from({ length: WORKERS }, (_, i) =>
      spawnProcess(node, [join(__dirname, 'worker.js')], {
        env: { ...process.env, WORKER_NAME: `worker-${i + 1}` },
      }),
    );
    procs.push(...workers);
    await Promise.all(workers.map((w) => w.waitForOutput(/ready/, 30_000)));
    console.log(`${FRONT_NODES.length} front-end nodes and ${WORKERS} workers ready`);

    const bp = await connectBackplane();
    const events: string[] = [];
    await bp.events.subscribe(FARM.progress, (_se, _topic, value) => events.push(String(value)));

    // kill worker-1 as soon as it has taken a job: its transaction is aborted and the job comes back
    let killed: { worker: string; job: number } | undefined;
    const victim = workers[0] as SpawnedProcess;
    void victim.waitForOutput(/worker-1 took job (\d+)/, 120_000).then(
      async (m) => {
        await victim.kill();
        killed = { worker: 'worker-1', job: Number(m[1]) };
        console.log(`killed worker-1 (kill -9) while it worked on job ${m[1]}`);
      },
      () => undefined,
    );

    // four owners, two whose jobs belong to each front-end node; clients connect one after the other,
    // so the coordinator's placement sends at least one to the wrong node, which hands it off
    const owners = FRONT_NODES.flatMap((n) =>
      CANDIDATE_OWNERS.filter((o) => ownerNode(o, FRONT_NODES) === n).slice(0, 2),
    );
    const submit = await where(bp.names, 'job-farm/submit');
    const clients = [];
    for (const [i, owner] of owners.entries())
      clients.push(await openClient(submit, owner, `127.0.0.${21 + i}`));
    const perClient = Math.ceil(JOBS / clients.length);
    const texts = (i: number) =>
      Array.from(
        { length: Math.min(perClient, JOBS - i * perClient) },
        (_, k) => `job text ${i}-${k} from a client`,
      );
    const results = await Promise.all(clients.map((c, i) => c.run(texts(i))));

    // the last progress events and counters trail the answers a little
    const deadline = Date.now() + 10_000;
    while (events.length < JOBS && Date.now() < deadline) await sleep(50);
    const completed = Number((await bp.props.get(FARM.completed))?.text() ?? 0);
    const submitted = Number((await bp.props.get(FARM.submitted))?.text() ?? 0);
    const all = results.flat();
    const byWorker: Record<string, number> = {};
    for (const d of all) byWorker[d.worker] = (byWorker[d.worker] ?? 0) + 1;
    const handoffs = fronts.reduce((n, f) => n + (f.output().match(/ handed /g)?.length ?? 0), 0);
    const redoneBy = killed ? all.find((d) => d.id === killed?.job)?.worker : undefined;
    const summary = {
      jobs: JOBS,
      done: all.length,
      distinctIds: new Set(all.map((d) => d.id)).size,
      submitted,
      completed,
      byWorker,
      killed: killed ? { ...killed, redoneBy } : null,
      owners: Object.fromEntries(
        clients.map((c) => [c.owner, { node: c.node, home: ownerNode(c.owner, FRONT_NODES) }]),
      ),
      handoffs,
      progressEvents: events.length,
      sample: all[0]?.output,
    };
    console.log(`jobs done: ${all.length}/${JOBS}, by worker: ${JSON.stringify(byWorker)}`);
    if (killed) console.log(`job ${killed.job} of the killed worker was redone by ${redoneBy}`);
    console.log(`handoffs to the owner's node: ${handoffs}; progress events: ${events.length}`);
    console.log(`summary ${JSON.stringify(summary)}`);
    bp.close();
    const ok =
      summary.done === JOBS &&
      summary.distinctIds === JOBS &&
      completed === JOBS &&
      submitted === JOBS &&
      killed !== undefined &&
      redoneBy !== undefined &&
      redoneBy !== 'worker-1' &&
      clients.every((c) => c.node === ownerNode(c.owner, FRONT_NODES));
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const p of procs.reverse()) await p.stop('SIGTERM', 5000).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('job farm failed:', err);
  process.exit(1);
});
