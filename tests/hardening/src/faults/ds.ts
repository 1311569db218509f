import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsAdmin } from '@backplane/ds-client';
import { type SpawnedProcess, spawnProcess, tempDir, waitFor } from '@backplane/runtime/testing';
import { ServiceProcess } from '../services';
import { emptyFaultReport, type FaultOptions, type FaultReport } from './run';

// the compiled script, whether this runs from dist/ or (under jest) from src/
const NODE_SCRIPT = join(__dirname, '..', '..', 'dist', 'faults', 'ds-echo-node.js');

/**
 * A client talks to an echo service through the coordinator, one numbered line at a time, and sends a
 * line again when no answer comes within a second (the node that read it may have died). The node the
 * client is bound to is killed with SIGKILL, `kills` times; the coordinator must hand the client to the
 * other node each time without closing its socket. Last, the coordinator itself is killed: its client
 * sockets close (it holds them), and the bindings must survive the restart.
 */
export async function faultDs(
  options: FaultOptions,
  log: (line: string) => void = () => undefined,
): Promise<FaultReport> {
  const dir = tempDir('faults-ds-');
  const coordinator = await ServiceProcess.start('ds-coordinator', dir.path);
  const nodes = new Map<string, SpawnedProcess>();
  const startNode = async (id: string) => {
    const p = spawnProcess(process.execPath, [NODE_SCRIPT, coordinator.address, id]);
    await p.waitForOutput(/echo node ready/);
    nodes.set(id, p);
  };
  await startNode('a');
  await startNode('b');
  const admin = new DsAdmin(coordinator.address);
  const report = emptyFaultReport('ds-coordinator (server-node kill -9)');
  const socket: Socket = createConnection({ host: '127.0.0.1', port: coordinator.dsServicePort });
  socket.on('error', () => undefined);
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  await new Promise((r) => socket.once('connect', r));
  let buffered = '';
  let answered = -1;
  socket.on('data', (d) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const n = Number(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (n === answered + 1) answered = n;
    }
  });
  let stop = false;
  let resends = 0;
  let longestWait = 0;
  const talker = (async () => {
    for (let seq = 0; !stop && !closed; seq += 1) {
      const started = Date.now();
      socket.write(`${seq}\n`);
      let last = Date.now();
      while (answered < seq && !closed) {
        await sleep(2);
        if (Date.now() - last > 1000) {
          socket.write(`${seq}\n`);
          resends += 1;
          last = Date.now();
        }
        if (Date.now() - started > 30_000) throw new Error(`line ${seq} unanswered for 30 s`);
      }
      longestWait = Math.max(longestWait, Date.now() - started);
    }
  })();
  try {
    for (let round = 0; round < options.kills; round += 1) {
      await sleep(600 + Math.random() * 900);
      const [bound] = await admin.clients({ name: 'default' });
      const id = /ds:\/\/([^/]+)\//.exec(bound?.nodeUrl ?? '')?.[1];
      const victim = id ? nodes.get(id) : undefined;
      if (!id || !victim)
        throw new Error(`the client is not bound to a known node: ${JSON.stringify(bound)}`);
      const before = answered;
      const killedAt = Date.now();
      await victim.kill();
      report.kills += 1;
      await waitFor(() => answered > before + 3 || closed, 30_000);
      report.maxRecoveryMs = Math.max(report.maxRecoveryMs, Date.now() - killedAt);
      await startNode(id);
      log(
        `ds: killed node ${id} (${round + 1}/${options.kills}); ${answered + 1} lines answered, socket ${closed ? 'CLOSED' : 'open'}`,
      );
    }
    stop = true;
    await talker;
  } finally {
    stop = true;
    await talker.catch(() => undefined);
  }
  report.acknowledged = answered + 1;
  report.found = answered + 1;
  if (closed) report.missing.push('the client socket closed during a node kill');
  report.blocked[
    `socket kept through ${report.kills} node deaths, ${resends} lines re-sent, longest wait ${longestWait} ms`
  ] = 1;

  // the coordinator: kill -9, restart, nodes re-attach, the binding is still there
  const bindingsBefore = (await admin.clients()).map((c) => `${c.clientUrl} → ${c.nodeUrl}`);
  await coordinator.crash();
  await coordinator.restart();
  const after = new DsAdmin(coordinator.address);
  await waitFor(async () => (await after.status().catch(() => ({ nodes: [] }))).nodes.length === 2, 30_000);
  const bindingsAfter = (await after.clients()).map((c) => `${c.clientUrl} → ${c.nodeUrl}`);
  report.kills += 1;
  if (JSON.stringify(bindingsAfter) !== JSON.stringify(bindingsBefore))
    report.missing.push(`bindings before ${bindingsBefore.join(', ')}, after ${bindingsAfter.join(', ')}`);
  report.blocked['coordinator kill -9: client sockets closed (it holds them), bindings kept'] = 1;
  report.peakRssKb = coordinator.peakRssKb();
  report.exits = coordinator.unexpectedExits;
  socket.destroy();
  admin.close();
  after.close();
  for (const p of nodes.values()) await p.stop('SIGTERM');
  await coordinator.stop();
  dir.remove();
  return report;
}
