// No container engine or Kubernetes runs here, so the deployment files are checked the way
// an operator's first `docker compose up` or `kubectl apply` would catch mistakes: every
// file parses, every flag a file passes to `leaderd` exists in that subcommand's --help,
// every config file key is a setting, and ids, ports and certificate paths agree within
// and across files. Each checker is also fed a broken file to prove it catches it.
import { MALLOC_MMAP_THRESHOLD_BYTES, NODE_MEMORY_FLAGS } from '../../src/server/memory-tuning.js';
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { runCli } from '../e2e/cluster.js';
import { SETTINGS } from '../../src/server/config.js';

const root = new URL('../../', import.meta.url);
const read = (rel: string) => readFileSync(new URL(rel, root), 'utf8');

/** The long flags a subcommand's --help lists. */
async function helpFlags(sub: string): Promise<Set<string>> {
  const r = await runCli([sub, '--help']);
  expect(r.code, r.stderr).toBe(0);
  return new Set([...r.stdout.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]!));
}

/** `--flag=value` and `--flag value` pairs of an argv (after the subcommand). */
function flagsOf(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(0, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out.set(a, argv[++i]!);
    else out.set(a, 'true');
  }
  return out;
}

/** Every flag of `argv` that `known` lacks. */
function unknownFlags(argv: readonly string[], known: Set<string>): string[] {
  return [...flagsOf(argv).keys()].filter((f) => !known.has(f));
}

function parseYaml(rel: string): unknown[] {
  const docs = parseAllDocuments(read(rel));
  for (const d of docs) expect(d.errors, `${rel}: ${d.errors.join('; ')}`).toEqual([]);
  return docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown);
}

/** JSON-ish form of a Dockerfile exec-form instruction: CMD ["a", "b"]. */
function dockerInstructions(text: string): { op: string; args: string }[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([A-Z]+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`Dockerfile: not an instruction: ${l}`);
      return { op: m[1]!, args: m[2]! };
    });
}

function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`not exec form: ${args}`);
  return parsed as string[];
}

/** Checks one cluster's start argvs agree: ids = peer ids, each node's ports match its peer entry, cert paths name the node. */
function clusterProblems(nodes: { id: string; flags: Map<string, string> }[]): string[] {
  const problems: string[] = [];
  const ids = nodes.map((n) => n.flags.get('--id') ?? '');
  const peerLists = new Set(nodes.map((n) => n.flags.get('--peers')));
  if (peerLists.size !== 1) problems.push(`nodes disagree on --peers: ${[...peerLists].join(' | ')}`);
  const peers = new Map(
    (nodes[0]?.flags.get('--peers') ?? '')
      .split(',')
      .filter((p) => p !== '')
      .map((p) => p.split('=') as [string, string]),
  );
  if ([...peers.keys()].sort().join() !== [...ids].sort().join())
    problems.push(`--id values ${ids.join(',')} != --peers ids ${[...peers.keys()].join(',')}`);
  if (peers.size % 2 === 0) problems.push(`an even number of members (${peers.size})`);
  for (const n of nodes) {
    const id = n.flags.get('--id')!;
    const port = (a: string | undefined) => a?.slice(a.lastIndexOf(':') + 1);
    const adv = n.flags.get('--advertise-peer');
    if (adv !== undefined && adv !== peers.get(id)) problems.push(`${id}: --advertise-peer ${adv} != its --peers entry ${peers.get(id)}`);
    if (port(n.flags.get('--listen-peer')) !== port(peers.get(id))) problems.push(`${id}: --listen-peer port != its --peers port`);
    if (n.flags.has('--advertise-client') && port(n.flags.get('--listen-client')) !== port(n.flags.get('--advertise-client')))
      problems.push(`${id}: --listen-client port != --advertise-client port`);
    for (const f of ['--peer-cert', '--peer-key', '--client-cert', '--client-key']) {
      const v = n.flags.get(f);
      if (v !== undefined && !v.split('/').pop()!.startsWith(`${id}.`)) problems.push(`${id}: ${f} ${v} is not this member's`);
    }
    if (n.flags.has('--peer-cert') !== n.flags.has('--peer-ca')) problems.push(`${id}: --peer-cert without --peer-ca`);
  }
  return problems;
}

describe('deployment files', () => {
  it('the clusterProblems checker catches mismatched ids, ports, peers and certificates', () => {
    const good = (id: string) =>
      flagsOf([
        `--id=${id}`,
        '--listen-peer=0.0.0.0:7100',
        `--advertise-peer=${id}:7100`,
        '--listen-client=0.0.0.0:7000',
        `--advertise-client=${id}:7000`,
        '--peers=a=a:7100,b=b:7100,c=c:7100',
        `--peer-cert=/c/${id}.crt`,
        '--peer-ca=/c/ca.crt',
      ]);
    const nodes = ['a', 'b', 'c'].map((id) => ({ id, flags: good(id) }));
    expect(clusterProblems(nodes)).toEqual([]);
    const broken = nodes.map((n) => ({ ...n, flags: new Map(n.flags) }));
    broken[1]!.flags.set('--listen-peer', '0.0.0.0:7200');
    broken[2]!.flags.set('--peer-cert', '/c/a.crt');
    broken[0]!.flags.set('--peers', 'a=a:7100,b=b:7100');
    const p = clusterProblems(broken);
    expect(p.some((x) => x.includes('disagree on --peers'))).toBe(true);
    expect(p.some((x) => x.includes('b: --listen-peer port'))).toBe(true);
    expect(p.some((x) => x.includes("c: --peer-cert /c/a.crt is not this member's"))).toBe(true);
    expect(unknownFlags(['--id=a', '--no-such-flag=1'], new Set(['--id']))).toEqual(['--no-such-flag']);
  });

  it('docker compose files (3 and 5 nodes): parse, pass only known flags, and agree on ids, ports and certificates', async () => {
    const start = await helpFlags('start');
    for (const [file, n] of [
      ['cluster/docker/compose-3.yml', 3],
      ['cluster/docker/compose-5.yml', 5],
    ] as const) {
      const [doc] = parseYaml(file) as [{ services: Record<string, { command: string[]; ports: string[]; volumes: string[] }> }];
      const services = Object.entries(doc.services);
      expect(services).toHaveLength(n);
      const nodes = services.map(([name, s]) => {
        expect(s.command[0], `${file} ${name}`).toBe('start');
        expect(unknownFlags(s.command.slice(1), start), `${file} ${name}`).toEqual([]);
        const flags = flagsOf(s.command.slice(1));
        expect(flags.get('--id'), `${file}: service ${name} runs member ${flags.get('--id')}`).toBe(name);
        // Published client port maps to the container's client port; peer port is not published.
        const clientPort = flags.get('--listen-client')!.split(':').pop();
        expect(
          s.ports.every((p) => p.endsWith(`:${clientPort}`)),
          `${file} ${name} ports ${s.ports.join()}`,
        ).toBe(true);
        expect(s.volumes.some((v) => v.endsWith(':/var/lib/leaderd')) && flags.get('--data-dir') === '/var/lib/leaderd').toBe(true);
        return { id: name, flags };
      });
      expect(clusterProblems(nodes), file).toEqual([]);
      const hostPorts = services.flatMap(([, s]) => s.ports.map((p) => p.split(':')[1]));
      expect(new Set(hostPorts).size, `${file}: host ports collide`).toBe(hostPorts.length);
    }
  });

  it('Kubernetes manifest: parses; StatefulSet, headless Service, PDB, probes, anti-affinity and TLS from a Secret agree', async () => {
    const start = await helpFlags('start');
    const probe = await helpFlags('probe');
    type Obj = { kind: string; metadata: { name: string }; spec: Record<string, unknown> };
    const docs = parseYaml('cluster/kubernetes/leaderd.yaml') as Obj[];
    const byKind = (k: string) => docs.filter((d) => d.kind === k);
    const sts = byKind('StatefulSet')[0]! as unknown as {
      spec: {
        replicas: number;
        serviceName: string;
        podManagementPolicy: string;
        template: {
          spec: {
            affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { topologyKey: string }[] } };
            securityContext: { runAsNonRoot: boolean };
            containers: {
              args: string[];
              ports: { name: string; containerPort: number }[];
              readinessProbe: { exec: { command: string[] } };
              livenessProbe: { exec: { command: string[] } };
              volumeMounts: { name: string; mountPath: string }[];
              securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean };
            }[];
            volumes: { name: string; secret?: { secretName: string } }[];
          };
        };
      };
    };
    const pod = sts.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.args[0]).toBe('start');
    expect(unknownFlags(c.args.slice(1), start)).toEqual([]);
    const flags = flagsOf(c.args.slice(1));
    // Pod names of a StatefulSet are <name>-0..N-1; --id is the pod name, so --peers must list exactly those.
    const ids = Array.from({ length: sts.spec.replicas }, (_, i) => `${'leaderd'}-${i}`);
    const nodes = ids.map((id) => ({ id, flags: new Map([...flags].map(([k, v]) => [k, v.replaceAll('$(POD_NAME)', id)])) }));
    expect(clusterProblems(nodes)).toEqual([]);
    // Peer addresses are the stable DNS names of the headless Service.
    const headless = byKind('Service').find((s) => s.metadata.name === sts.spec.serviceName)! as unknown as {
      metadata: { namespace: string };
      spec: { clusterIP: string; publishNotReadyAddresses: boolean; ports: { port: number; name: string }[] };
    };
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    for (const id of ids)
      expect(flags.get('--peers')).toContain(`${id}=${id}.${sts.spec.serviceName}.${headless.metadata.namespace}.svc.cluster.local:`);
    const port = (name: string) => c.ports.find((p) => p.name === name)!.containerPort;
    expect(flags.get('--listen-peer')).toBe(`0.0.0.0:${port('peer')}`);
    expect(flags.get('--listen-client')).toBe(`0.0.0.0:${port('client')}`);
    expect(headless.spec.ports.map((p) => p.port).sort()).toEqual([port('client'), port('peer')].sort());
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    // PDB keeps a majority.
    const pdb = byKind('PodDisruptionBudget')[0]! as unknown as { spec: { minAvailable: number } };
    expect(pdb.spec.minAvailable).toBe(Math.floor(sts.spec.replicas / 2) + 1);
    expect(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]!.topologyKey).toBe('kubernetes.io/hostname');
    // Probes run leaderd probe against this pod's client port; liveness must not need a leader.
    for (const check of [c.readinessProbe, c.livenessProbe]) {
      const cmd = check.exec.command;
      const i = cmd.indexOf('probe');
      expect(i).toBeGreaterThan(0);
      expect(unknownFlags(cmd.slice(i + 1), probe)).toEqual([]);
      expect(flagsOf(cmd.slice(i + 1)).get('--endpoints')).toBe(`127.0.0.1:${port('client')}`);
    }
    expect(c.livenessProbe.exec.command).toContain('--live');
    expect(c.readinessProbe.exec.command).not.toContain('--live');
    // Certificates come from a Secret mounted where the flags point.
    const tlsMount = c.volumeMounts.find((m) => flags.get('--peer-ca')!.startsWith(m.mountPath + '/'))!;
    expect(pod.volumes.find((v) => v.name === tlsMount.name)?.secret?.secretName).toBeTruthy();
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
  });

  it('Dockerfile: multi-stage, non-root, HEALTHCHECK and ENTRYPOINT run leaderd with known flags, ports match the compose files', async () => {
    const ins = dockerInstructions(read('cluster/docker/Dockerfile'));
    expect(ins.filter((i) => i.op === 'FROM').length).toBeGreaterThanOrEqual(2);
    const user = ins.filter((i) => i.op === 'USER').pop();
    expect(user && !['root', '0'].includes(user.args)).toBe(true);
    const hc = ins.find((i) => i.op === 'HEALTHCHECK')!;
    const cmd = execForm(hc.args.slice(hc.args.indexOf('CMD') + 3).trim());
    const probe = await helpFlags('probe');
    expect(cmd.slice(cmd.indexOf('probe') + 1).filter((a) => a.startsWith('--') && !probe.has(a))).toEqual([]);
    const exposed = ins
      .filter((i) => i.op === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/))
      .sort();
    const [compose] = parseYaml('cluster/docker/compose-3.yml') as [{ services: Record<string, { command: string[] }> }];
    const f = flagsOf(Object.values(compose.services)[0]!.command.slice(1));
    expect(exposed).toEqual([f.get('--listen-client')!.split(':')[1], f.get('--listen-peer')!.split(':')[1]].sort());
    expect(flagsOf(cmd.slice(cmd.indexOf('probe') + 1)).get('--endpoints')).toBe(`127.0.0.1:${f.get('--listen-client')!.split(':')[1]}`);
    const entry = execForm(ins.find((i) => i.op === 'ENTRYPOINT')!.args);
    expect(entry.join(' ')).toContain('dist/src/cli/main.js');
    // It runs main.js itself, not bin/leaderd: it must give the node the memory settings (memory-tuning.ts).
    expect(entry.slice(1, 1 + NODE_MEMORY_FLAGS.length)).toEqual(NODE_MEMORY_FLAGS);
    expect(ins.some((i) => i.op === 'ENV' && i.args.trim() === `MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_BYTES}`)).toBe(true);
    const start = await helpFlags('start');
    const defaultCmd = execForm(ins.find((i) => i.op === 'CMD')!.args);
    expect(defaultCmd[0]).toBe('start');
    expect(unknownFlags(defaultCmd.slice(1), start)).toEqual([]);
  });

  it('systemd unit: hardened, restarts on a crash but not on exit code 2, runs leaderd start with known flags', async () => {
    const unit = read('cluster/three-hosts/leaderd.service');
    const kv = new Map<string, string>();
    let section = '';
    for (const line of unit.split('\n')) {
      const l = line.trim();
      if (l === '' || l.startsWith('#')) continue;
      const s = /^\[(\w+)\]$/.exec(l);
      if (s) {
        section = s[1]!;
        continue;
      }
      const m = /^([A-Za-z]+)=(.*)$/.exec(l);
      if (!m) throw new Error(`leaderd.service: not a key=value line: ${l}`);
      expect(kv.has(`${section}.${m[1]}`), `${m[1]} set twice`).toBe(false);
      kv.set(`${section}.${m[1]}`, m[2]!);
    }
    expect(kv.get('Service.Restart')).toBe('on-failure');
    expect(kv.get('Service.RestartPreventExitStatus')!.split(/\s+/)).toContain('2');
    expect(kv.get('Service.NoNewPrivileges')).toBe('yes');
    expect(kv.get('Service.ProtectSystem')).toBe('strict');
    expect(kv.get('Service.User') ?? kv.get('Service.DynamicUser')).toBeTruthy();
    expect(kv.get('Service.CapabilityBoundingSet')).toBe('');
    const exec = kv.get('Service.ExecStart')!.split(/\s+/);
    const i = exec.indexOf('start');
    expect(i).toBeGreaterThan(0);
    expect(unknownFlags(exec.slice(i + 1), await helpFlags('start'))).toEqual([]);
  });

  it('config files: JSON objects of known settings; each cluster agrees on ids, ports and certificates', () => {
    for (const dir of ['cluster/local-3', 'cluster/local-5', 'cluster/three-hosts']) {
      const files = readdirSync(new URL(dir, root)).filter((f) => f.endsWith('.json'));
      expect(files.length % 2, `${dir}: odd number of members`).toBe(1);
      const nodes = files.map((f) => {
        const obj = JSON.parse(read(`${dir}/${f}`)) as Record<string, string | number | boolean>;
        for (const k of Object.keys(obj)) expect((SETTINGS as readonly string[]).includes(k), `${dir}/${f}: ${k}`).toBe(true);
        return { id: String(obj.id), flags: new Map(Object.entries(obj).map(([k, v]) => [`--${k}`, String(v)])) };
      });
      expect(clusterProblems(nodes), dir).toEqual([]);
      // Listening beyond loopback needs TLS (or an explicit --insecure).
      for (const n of nodes)
        if (!n.flags.get('--listen-peer')!.startsWith('127.'))
          expect(n.flags.has('--peer-cert') || n.flags.get('--insecure') === 'true', `${dir} ${n.id}`).toBe(true);
    }
  });
});
