// A small network lab for partition tests: one network namespace per node plus a
// "switch" namespace holding a bridge, all on the test-only subnet 10.213.0.0/24, and a
// veth from this (the test's) namespace into the switch so the test can talk to the
// nodes. Partitioning a node = taking its port on the switch down: real packets are
// really lost, TCP connections really hang, and gRPC keepalive has to notice.
// Everything is created under unique names and removed by destroy(), which tests call
// from afterAll even when they fail.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const SUBNET = '10.213.0';
const HOST_IP = `${SUBNET}.254`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class NetLab {
  readonly tag = randomBytes(3).toString('hex');
  readonly switchNs = `ldsw-${this.tag}`;
  readonly hostIf = `ldh${this.tag}`;
  private readonly nodes = new Map<string, { ns: string; port: string; addr: string }>();
  private created: string[] = [];
  private hostIfCreated = false;

  /**
   * Build the switch and connect this namespace to it. Refuses, naming the holder, when
   * the test subnet is already in use here (a concurrent chaos run, or one that died
   * before its cleanup): two labs on one subnet would route each other's packets.
   */
  create(): void {
    const holders = execFileSync('ip', ['-o', 'addr', 'show', 'to', `${SUBNET}.0/24`], { encoding: 'utf8' }).trim();
    if (holders !== '')
      throw new Error(
        `the chaos test subnet ${SUBNET}.0/24 is already in use on this host (another chaos run?): ${holders.split('\n')[0]}; ` +
          `remove it (ip link del <dev>) once no run is active`,
      );
    ip('netns', 'add', this.switchNs);
    this.created.push(this.switchNs);
    ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
    ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', 'vhost', 'netns', this.switchNs);
    this.hostIfCreated = true;
    ip('-n', this.switchNs, 'link', 'set', 'vhost', 'master', 'br0', 'up');
    ip('addr', 'add', `${HOST_IP}/24`, 'dev', this.hostIf);
    ip('link', 'set', this.hostIf, 'up');
  }

  /** A host for node `id` at 10.213.0.<n>. Returns its address. */
  addHost(id: string, n: number): string {
    const ns = `ld${id}-${this.tag}`;
    const port = `v${id}`;
    const addr = `${SUBNET}.${n}`;
    ip('netns', 'add', ns);
    this.created.push(ns);
    ip('-n', this.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.switchNs, 'link', 'set', port, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    this.nodes.set(id, { ns, port, addr });
    return addr;
  }

  address(id: string): string {
    return this.nodes.get(id)!.addr;
  }

  /** Run a program inside node `id`'s namespace. `ip netns exec` execs it: the PID is the program's. */
  spawnIn(id: string, command: string, args: string[], stdio: 'ignore' | 'pipe' | number = 'ignore'): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.nodes.get(id)!.ns, command, ...args], { stdio: ['ignore', stdio, stdio] });
  }

  /** Cut node `id` off from everyone (symmetric partition). */
  isolate(id: string): void {
    ip('-n', this.switchNs, 'link', 'set', this.nodes.get(id)!.port, 'down');
  }

  heal(id: string): void {
    ip('-n', this.switchNs, 'link', 'set', this.nodes.get(id)!.port, 'up');
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
