// A small network lab on one machine: one network namespace per node plus a "switch"
// namespace holding a bridge for the peer network (10.213.0.0/24), and a veth from this
// namespace into the switch so this process can talk to the nodes. Isolating a node =
// taking its port on the switch down: real packets are really lost, TCP connections
// really hang, and gRPC keepalive has to notice. With `clientNet`, a second bridge
// (10.213.1.0/24) carries client traffic only, and this namespace joins only that one:
// isolating a node then cuts it from its peers while clients and probes still reach it,
// which is how `leaderd drill --fault isolate` watches the old leader give up its lease.
// Everything is created under unique names and removed by destroy(), which callers run
// however they end. Needs root and iproute2.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** The peer network (and the only one without clientNet): a test-only subnet. */
export const SUBNET = '10.213.0';
/** The client network with clientNet. */
export const CLIENT_SUBNET = '10.213.1';

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

  constructor(private readonly opts: NetLabOptions = {}) {}

  /** The subnet this namespace reaches the nodes on. */
  private get hostSubnet(): string {
    return this.opts.clientNet ? CLIENT_SUBNET : SUBNET;
  }

  /**
   * Build the switch and connect this namespace to it. Refuses, naming the holder, when
   * the test subnet is already in use here (a concurrent chaos run, or one that died
   * before its cleanup): two labs on one subnet would route each other's packets.
   */
  create(): void {
    for (const net of [SUBNET, CLIENT_SUBNET]) {
      const holders = execFileSync('ip', ['-o', 'addr', 'show', 'to', `${net}.0/24`], { encoding: 'utf8' }).trim();
      if (holders !== '')
        throw new Error(
          `the network lab's subnet ${net}.0/24 is already in use on this host (another lab running?): ${holders.split('\n')[0]}; ` +
            `remove it (ip link del <dev>) once no lab is running`,
        );
    }
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
   * A host for node `id` at 10.213.0.<n> on the peer network (and 10.213.1.<n> on the
   * client network with clientNet). Returns its peer-network address.
   */
  addHost(id: string, n: number): string {
    const ns = `ld${id}-${this.tag}`;
    const port = `v${id}`;
    const addr = `${SUBNET}.${n}`;
    const clientAddr = this.opts.clientNet ? `${CLIENT_SUBNET}.${n}` : addr;
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
  }
}
