// What `npm install leaderd` gives a user: the packed tarball (npm pack), unpacked as
// node_modules/leaderd of a project of its own, imported by its documented entry points.
// Its dependencies resolve from this checkout's node_modules (the project lives under
// it), so the test needs no registry. Needs the build (npm test compiles first).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const scratch = join(repo, 'node_modules', '.cache');
mkdirSync(scratch, { recursive: true });
const project = mkdtempSync(join(scratch, 'leaderd-pack-'));

afterAll(() => rmSync(project, { recursive: true, force: true }));

const CHECK = `
import { LeaderdClient, createNode, FencingVerifier, ClusterClient, textOf } from 'leaderd';
import { createNode as embedCreateNode } from 'leaderd/embed';
import { LeaderdClient as ClientOnly } from 'leaderd/client';
import { FencingVerifier as Verifier } from 'leaderd/fencing';
const out = {
  client: typeof LeaderdClient, createNode: typeof createNode, verifier: typeof FencingVerifier,
  clusterClientIsClient: ClusterClient.prototype instanceof LeaderdClient, textOf: typeof textOf,
  embed: embedCreateNode === createNode, clientEntry: ClientOnly === LeaderdClient, fencingEntry: Verifier === FencingVerifier,
};
// The protos ship with the package: a call to a closed port fails as unavailable, not on a missing file.
const c = new LeaderdClient({ endpoints: ['127.0.0.1:1'], timeoutMs: 300 });
try { await c.status('127.0.0.1:1'); } catch (err) { out.callError = err.kind; }
c.close();
try { await import('leaderd/dist/src/server/node.js'); out.deep = 'importable'; } catch (err) { out.deep = err.code; }
console.log(JSON.stringify(out));
`;

describe('the packed package', () => {
  it('exports LeaderdClient and createNode from "leaderd", and the client, embed and fencing entries; internals stay private', () => {
    expect(existsSync(join(repo, 'dist/src/index.js'))).toBe(true);
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', project], {
      cwd: repo,
      encoding: 'utf8',
    }).trim();
    const tarball = join(project, packed.split('\n').at(-1)!);
    mkdirSync(join(project, 'node_modules'));
    execFileSync('tar', ['-xzf', tarball, '-C', join(project, 'node_modules')]);
    renameSync(join(project, 'node_modules', 'package'), join(project, 'node_modules', 'leaderd'));
    expect(readdirSync(join(project, 'node_modules', 'leaderd')).sort()).toEqual(expect.arrayContaining(['dist', 'package.json', 'proto']));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pack-check', type: 'module', private: true }));
    writeFileSync(join(project, 'check.mjs'), CHECK);
    const out = JSON.parse(execFileSync(process.execPath, ['check.mjs'], { cwd: project, encoding: 'utf8' })) as Record<string, unknown>;
    expect(out).toEqual({
      client: 'function',
      createNode: 'function',
      verifier: 'function',
      clusterClientIsClient: true,
      textOf: 'function',
      embed: true,
      clientEntry: true,
      fencingEntry: true,
      callError: 'unavailable',
      deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    });
  }, 120_000);
});
