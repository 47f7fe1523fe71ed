// leaderd's public embedding API: what users may import and rely on. Everything else
// under src/ is internal.
export { createNode, LeadershipLost, type CreateNodeOptions, type EmbeddedNode, type LeadershipChange } from './embed.js';
export { NodeError, type NodeErrorKind, type StateMachine, type LeaderView, type MemberView, type NodeStatusView } from './server/node.js';
export type { Entry } from './raft/types.js';
export * from './client/leaderd-client.js';
/** @deprecated LeaderdClient under its old name and constructor. */
export { ClusterClient } from './client/cluster-client.js';
export * from './fencing/index.js';
