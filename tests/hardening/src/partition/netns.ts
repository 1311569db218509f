import { execFileSync } from 'node:child_process';
import { type SpawnedProcess, spawnProcess } from '@backplane/runtime/testing';

/**
 * A private virtual network on this machine: one network namespace per node, each joined by a veth pair
 * to a bridge in the host's namespace, on a /24 of 10.213.x.0 that no route of the host uses. Packets
 * never leave the machine: the bridge has no uplink. Needs root (CAP_NET_ADMIN) and `ip` (iproute2).
 *
 * A partition is made of blackhole routes inside the namespaces: traffic between the two sides is dropped
 * silently (established TCP connections stall, new ones fail), while the host, where the test's clients
 * live, still reaches every node. No iptables or tc action modules are needed.
 */
export class PrivateNetwork {
  private readonly prefix: string;
  private readonly bridge: string;
  private readonly blackholes: Array<{ ns: string; to: string }> = [];
  private removed = false;
  /** The namespace names, one per node. */
  readonly namespaces: string[];
  /** Each node's address. */
  readonly addresses: string[];
  /** The host's address on the bridge. */
  readonly hostAddress: string;

  private constructor(size: number) {
    this.prefix = `bp${process.pid}`;
    this.bridge = `${this.prefix}br`;
    const subnet = freeSubnet();
    this.hostAddress = `${subnet}.1`;
    this.namespaces = Array.from({ length: size }, (_, i) => `${this.prefix}n${i}`);
    this.addresses = this.namespaces.map((_, i) => `${subnet}.${11 + i}`);
  }

  /** Whether this machine lets us make namespaces (root with CAP_NET_ADMIN and iproute2); why not if not. */
  static unavailableReason(): string | undefined {
    const probe = `bp${process.pid}probe`;
    try {
      ip('netns', 'add', probe);
      ip('netns', 'del', probe);
      return undefined;
    } catch (err) {
      return `cannot create a network namespace (${(err as Error).message.split('\n')[0]})`;
    }
  }

  static create(size: number): PrivateNetwork {
    removeStale();
    const net = new PrivateNetwork(size);
    process.once('exit', () => net.remove());
    try {
      ip('link', 'add', net.bridge, 'type', 'bridge');
      ip('addr', 'add', `${net.hostAddress}/24`, 'dev', net.bridge);
      ip('link', 'set', net.bridge, 'up');
      // a firewall that drops forwarded packets (Docker sets FORWARD to DROP, and with br_netfilter that
      // covers bridged ones) would cut the nodes off from each other from the start
      allowForwarding(net.bridge, true);
      net.namespaces.forEach((ns, i) => {
        const veth = `${net.prefix}v${i}`;
        ip('netns', 'add', ns);
        ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ip('link', 'set', veth, 'master', net.bridge, 'up');
        ip('-n', ns, 'addr', 'add', `${net.addresses[i]}/24`, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      });
    } catch (err) {
      net.remove();
      throw err;
    }
    return net;
  }

  /** Runs `command` inside node `i`'s namespace (ip netns exec replaces itself with the command). */
  spawn(i: number, command: string, args: string[], env?: NodeJS.ProcessEnv): SpawnedProcess {
    return spawnProcess('ip', ['netns', 'exec', this.namespaces[i] as string, command, ...args], { env });
  }

  /** Cuts every link between the nodes in `side` and the others (both directions); the host reaches all. */
  partition(side: number[]): void {
    const others = this.namespaces.map((_, i) => i).filter((i) => !side.includes(i));
    for (const a of side)
      for (const b of others) {
        this.blackhole(a, b);
        this.blackhole(b, a);
      }
  }

  private blackhole(from: number, to: number): void {
    const ns = this.namespaces[from] as string;
    const addr = `${this.addresses[to]}/32`;
    ip('-n', ns, 'route', 'add', 'blackhole', addr);
    this.blackholes.push({ ns, to: addr });
  }

  /** Removes every partition. */
  heal(): void {
    for (const { ns, to } of this.blackholes.splice(0)) ip('-n', ns, 'route', 'del', 'blackhole', to);
  }

  /** Deletes the namespaces (their veths go with them) and the bridge; safe to call twice. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const ns of this.namespaces) tryIp('netns', 'del', ns);
    tryIp('link', 'del', this.bridge);
    allowForwarding(this.bridge, false);
  }
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already gone
  }
}

/**
 * Lets (or no longer lets) packets be forwarded between the bridge's own ports, ahead of any rule of
 * the host's firewall. Nothing to do where there is no iptables.
 */
function allowForwarding(bridge: string, on: boolean): void {
  const rule = ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
  try {
    if (on) execFileSync('iptables', ['-I', ...rule], { stdio: 'ignore' });
    else execFileSync('iptables', ['-D', ...rule], { stdio: 'ignore' });
  } catch {
    // no iptables (then no firewall of its kind either), or the rule is gone already
  }
}

/** A 10.213.x prefix that no route of the host's namespace covers. */
function freeSubnet(): string {
  const routes = ip('-4', 'route', 'show', 'table', 'all');
  for (let x = process.pid % 200; x < (process.pid % 200) + 256; x++) {
    const candidate = `10.213.${x % 256}`;
    if (!routes.includes(`${candidate}.`) && !/(^|\s)10\.0\.0\.0\/8|10\.213\.0\.0\/16/.test(routes))
      return candidate;
  }
  throw new Error('no free 10.213.x.0/24 for a private test network');
}

/** Namespaces and bridges a killed run left behind (named after a pid that no longer runs). */
function removeStale(): void {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const line of ip('netns', 'list').split('\n')) {
    const m = /^bp(\d+)n\d+/.exec(line);
    if (m && !alive(Number(m[1]))) tryIp('netns', 'del', m[0]);
  }
  for (const line of ip('-o', 'link', 'show', 'type', 'bridge').split('\n')) {
    const m = /^\d+:\s+(bp(\d+)br)[:@]/.exec(line);
    if (m && !alive(Number(m[2]))) tryIp('link', 'del', m[1] as string);
  }
  let rules = '';
  try {
    rules = execFileSync('iptables', ['-S', 'FORWARD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return;
  }
  for (const line of rules.split('\n')) {
    const m = /-i (bp(\d+)br) -o bp\d+br -j ACCEPT/.exec(line);
    if (m && !alive(Number(m[2]))) allowForwarding(m[1] as string, false);
  }
}
