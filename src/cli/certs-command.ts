// `leaderd certs init`: a test CA and certificates for a cluster (security/certs.ts).
import { CertsError, certsInit } from '../security/certs.js';
import { parseId } from '../server/config.js';
import { UsageError } from './usage.js';

export interface CertsInitFlags {
  dir: string;
  nodes: string;
  hosts?: string;
  clientName?: string;
  days?: string;
}

const list = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

export async function runCertsInit(flags: CertsInitFlags): Promise<void> {
  const nodes = list(flags.nodes);
  if (nodes.length === 0) throw new UsageError('--nodes is empty');
  for (const id of nodes) {
    try {
      parseId(id, '--nodes entry');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const days = Number(flags.days ?? '365');
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new UsageError(`--days must be a whole number from 1 to 3650, got '${flags.days}'`);
  try {
    const r = await certsInit({ dir: flags.dir, nodes, hosts: list(flags.hosts), clientName: flags.clientName ?? 'admin', days });
    for (const f of r.files) process.stdout.write(`${f}\n`);
  } catch (err) {
    if (err instanceof CertsError) throw new UsageError(err.message);
    throw err;
  }
}
