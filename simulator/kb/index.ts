/**
 * Fakes of the knowledge-base sinks larksync pushes documents into (../shared/kb/ragflow-dify.md):
 * RagflowFake (RAGFlow HTTP API, v0.13 … v0.27) and DifyFake (Dify Knowledge Service API).
 * Both are real HTTP servers with start()/stop()/url, fault and time controls, call and write
 * counters, and inspection of the stored documents (common.ts).
 */
export { RagflowFake, RetCode, RAGFLOW_VERSIONS, CHUNK_METHODS, type RagflowOptions, type RagflowDocView, type RunText } from './ragflow.js';
export { DifyFake, type DifyOptions, type DifyDocView, type IndexingStatus, type DisplayStatus } from './dify.js';
export {
  KbFakeBase,
  type FaultKind,
  type KbFault,
  type RandomFaultOptions,
  type ParseRule,
  type KbCall,
  type WriteCounts,
  type WriteRecord,
  type WriteOp,
} from './common.js';
