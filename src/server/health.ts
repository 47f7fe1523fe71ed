// /healthz and /readyz for load balancers and Kubernetes, and /metrics, on the node's
// HTTP listener.
//
// healthz: the process runs and its event loop answers. Nothing else: a restart does not
//   cure a lost quorum, so liveness must not depend on the cluster.
// readyz:  this node is worth sending clients to. It knows a leader (a follower forwards
//   to it), it has applied everything it knows committed, and if it leads, its lease is
//   valid (a quorum acknowledged it within an election timeout). A survivor cut off from
//   the majority turns not-ready once it stops knowing a leader: its election timeout
//   (follower) or its check-quorum step-down (leader) — and a leader already at lease expiry.
import type { HttpListener } from './http-listener.js';
import { json, text } from './http-listener.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeStatusView } from './node.js';

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/** The fields readiness needs: a node's own status, or another member's GetStatus answer (the dashboard). */
export type ReadinessInput = Pick<NodeStatusView, 'leaderId' | 'leaseValid' | 'appliedIndex' | 'commitIndex'> & { readonly role: string };

export function readiness(s: ReadinessInput): Readiness {
  if (s.leaderId === '') return { ready: false, reason: 'no leader known' };
  if (s.role === 'leader' && !s.leaseValid) return { ready: false, reason: 'leading without a valid lease (no quorum confirmed it)' };
  if (s.appliedIndex < s.commitIndex) return { ready: false, reason: `applied ${s.appliedIndex} of ${s.commitIndex} committed` };
  return { ready: true };
}

export function addOperatorRoutes(listener: HttpListener, deps: { status(): NodeStatusView; metrics: NodeMetrics }): void {
  listener
    .route('/healthz', (_req, res) => text(res, 200, 'ok\n'))
    .route('/readyz', (_req, res) => {
      const s = deps.status();
      const r = readiness(s);
      json(res, r.ready ? 200 : 503, {
        ...r,
        node: s.nodeId,
        role: s.role,
        term: s.term,
        leader: s.leaderId,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
      });
    })
    .route('/metrics', async (_req, res) => {
      const body = await deps.metrics.text();
      res.writeHead(200, { 'Content-Type': deps.metrics.contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
}
