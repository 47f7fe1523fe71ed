// A small network lab on one machine: one network namespace per node plus a "switch"
// namespace holding a bridge for the peer network, and a veth from this namespace into
// the switch so this process can talk to the nodes. Isolating a node = taking its port on
// the switch down: real packets are really lost, TCP connections really hang, and gRPC
// keepalive has to notice. With `clientNet`, a second bridge carries client traffic only,
// and this namespace joins only that one: isolating a node then cuts it from its peers
// while clients and probes still reach it, which is how `leaderd drill --fault isolate`
// watches the old leader give up its lease.
//
// Addresses come from the test-only range 10.213.0.0/16: each lab claims a free pair of
// /24s (10.213.2k.0 for peers, 10.213.2k+1.0 for clients) with a lock file naming its
// PID, so two labs at once (a drill beside the chaos test) never share a subnet.
// Everything is created under unique names and removed by destroy(), which callers run
// however they end. Needs root and iproute2.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Pairs of /24s a lab may claim: 10.213.0.0/24 + 10.213.1.0/24, 10.213.2.0/24 + 10.213.3.0/24, ... */
const SUBNET_PAIRS = 32;

const lockPath = (k: number) => join(tmpdir(), `leaderd-netlab-${k}.lock`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function inUse(prefix: string): boolean {
  return execFileSync('ip', ['-o', 'addr', 'show', 'to', `${prefix}.0/24`], { encoding: 'utf8' }).trim() !== '';
}

/** Claims a free pair: its lock file is created exclusively; one whose PID is gone is stale and taken over. */
function claimSubnets(): { k: number; peer: string; client: string } {
  for (let k = 0; k < SUBNET_PAIRS; k++) {
    const peer = `10.213.${2 * k}`;
    const client = `10.213.${2 * k + 1}`;
    let fd: number;
    try {
      fd = openSync(lockPath(k), 'wx');
    } catch {
      const owner = Number(readFileSync(lockPath(k), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) continue;
      rmSync(lockPath(k), { force: true });
      try {
        fd = openSync(lockPath(k), 'wx');
      } catch {
        continue;
      }
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    // Someone outside these locks (a lab of an older version, a hand-made interface).
    if (inUse(peer) || inUse(client)) {
      rmSync(lockPath(k), { force: true });
      continue;
    }
    return { k, peer, client };
  }
  throw new Error(
    `no free subnet pair for the network lab in 10.213.0.0/16 (${SUBNET_PAIRS} in use?); see ${join(tmpdir(), 'leaderd-netlab-*.lock')}`,
  );
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface NetLabOptions {
  /** A separate client network that this namespace joins instead of the peer network. */
  readonly clientNet?: boolean;
}

export class NetLab {
  readonly tag = randomBytes(3).toString('hex');
  readonly switchNs = `ldsw-${this.tag}`;
  readonly hostIf = `ldh${this.tag}`;
  private readonly nodes = new Map<string, { ns: string; port: string; addr: string; clientAddr: string }>();
  private created: string[] = [];
  private hostIfCreated = false;
  private subnets: { k: number; peer: string; client: string } | null = null;

  constructor(private readonly opts: NetLabOptions = {}) {}

  private get nets(): { peer: string; client: string } {
    if (this.subnets === null) throw new Error('network lab: create() first');
    return this.subnets;
  }

  /** The subnet this namespace reaches the nodes on: the client network with clientNet, else the only one. */
  private get hostSubnet(): string {
    return this.opts.clientNet ? this.nets.client : this.nets.peer;
  }

  /** The peer network's /24, e.g. 10.213.0.0/24. */
  get peerSubnet(): string {
    return `${this.nets.peer}.0/24`;
  }

  /**
   * Claim a free pair of subnets, build the switch and connect this namespace to it. Two
   * labs on one subnet would route each other's packets, so a subnet in use here (by
   * another lab, or anything else) is never claimed.
   */
  create(): void {
    this.subnets = claimSubnets();
    ip('netns', 'add', this.switchNs);
    this.created.push(this.switchNs);
    for (const br of this.opts.clientNet ? ['br0', 'br1'] : ['br0']) {
      ip('-n', this.switchNs, 'link', 'add', br, 'type', 'bridge');
      ip('-n', this.switchNs, 'link', 'set', br, 'up');
    }
    ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', 'vhost', 'netns', this.switchNs);
    this.hostIfCreated = true;
    ip('-n', this.switchNs, 'link', 'set', 'vhost', 'master', this.opts.clientNet ? 'br1' : 'br0', 'up');
    ip('addr', 'add', `${this.hostSubnet}.254/24`, 'dev', this.hostIf);
    ip('link', 'set', this.hostIf, 'up');
  }

  /**
   * A host for node `id` at <peer subnet>.<n> (and <client subnet>.<n> with clientNet).
   * Returns its peer-network address.
   */
  addHost(id: string, n: number): string {
    const ns = `ld${id}-${this.tag}`;
    const port = `v${id}`;
    const addr = `${this.nets.peer}.${n}`;
    const clientAddr = this.opts.clientNet ? `${this.nets.client}.${n}` : addr;
    ip('netns', 'add', ns);
    this.created.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const attach = (swPort: string, dev: string, br: string, a: string) => {
      ip('-n', this.switchNs, 'link', 'add', swPort, 'type', 'veth', 'peer', 'name', dev, 'netns', ns);
      ip('-n', this.switchNs, 'link', 'set', swPort, 'master', br, 'up');
      ip('-n', ns, 'addr', 'add', `${a}/24`, 'dev', dev);
      ip('-n', ns, 'link', 'set', dev, 'up');
    };
    attach(port, 'eth0', 'br0', addr);
    if (this.opts.clientNet) attach(`c${id}`, 'eth1', 'br1', clientAddr);
    this.nodes.set(id, { ns, port, addr, clientAddr });
    return addr;
  }

  address(id: string): string {
    return this.node(id).addr;
  }

  /** Where this namespace reaches node `id`: its client-network address with clientNet, else its only one. */
  clientAddress(id: string): string {
    return this.node(id).clientAddr;
  }

  private node(id: string): { ns: string; port: string; addr: string; clientAddr: string } {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no host ${id} in the network lab`);
    return n;
  }

  /** A command prefix that runs the rest inside node `id`'s namespace (it execs: the PID is the program's). */
  execIn(id: string): string[] {
    return ['ip', 'netns', 'exec', this.node(id).ns];
  }

  /** Run a program inside node `id`'s namespace. `ip netns exec` execs it: the PID is the program's. */
  spawnIn(id: string, command: string, args: string[], stdio: 'ignore' | 'pipe' | number = 'ignore'): ChildProcess {
    const [ipCmd, ...rest] = this.execIn(id);
    return spawn(ipCmd!, [...rest, command, ...args], { stdio: ['ignore', stdio, stdio] });
  }

  /** Cut node `id` off from the peer network (symmetric partition; with clientNet clients still reach it). */
  isolate(id: string): void {
    ip('-n', this.switchNs, 'link', 'set', this.node(id).port, 'down');
  }

  heal(id: string): void {
    ip('-n', this.switchNs, 'link', 'set', this.node(id).port, 'up');
  }

  /**
   * A firewall in front of node `id` on the peer network that refuses with TCP resets
   * (`iptables -j REJECT --reject-with tcp-reset`): what comes in (`in`), or what comes in
   * and what goes out (`both`). Peers then see resets and refused connections, but never
   * the clean close of a process that exited. Needs iptables.
   */
  reject(id: string, way: 'in' | 'both'): void {
    const rules =
      way === 'in'
        ? [['INPUT', '-i']]
        : [
            ['INPUT', '-i'],
            ['OUTPUT', '-o'],
          ];
    for (const [chain, dir] of rules) {
      execFileSync(
        'ip',
        [
          'netns',
          'exec',
          this.node(id).ns,
          'iptables',
          '-w',
          '-A',
          chain!,
          dir!,
          'eth0',
          '-p',
          'tcp',
          '-j',
          'REJECT',
          '--reject-with',
          'tcp-reset',
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
    }
  }

  /** Remove what reject() added for node `id`. */
  unreject(id: string): void {
    for (const chain of ['INPUT', 'OUTPUT']) {
      execFileSync('ip', ['netns', 'exec', this.node(id).ns, 'iptables', '-w', '-F', chain], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
  }

  /** The namespaces this lab created, and the interface it added here (what to remove by hand if its process was killed -9). */
  owned(): { namespaces: string[]; hostInterface: string | null } {
    return { namespaces: [...this.created], hostInterface: this.hostIfCreated ? this.hostIf : null };
  }

  /** Remove every namespace and interface this lab created (idempotent, never throws). */
  destroy(): void {
    if (this.hostIfCreated) {
      try {
        ip('link', 'del', this.hostIf);
      } catch {
        // already gone with the switch namespace
      }
      this.hostIfCreated = false;
    }
    for (const ns of this.created.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    this.created = [];
    if (this.subnets !== null) {
      rmSync(lockPath(this.subnets.k), { force: true });
      this.subnets = null;
    }
  }
}
