/** One row per live graphile-worker of any larksync process (worker-processes.ts keeps them). */
export interface WorkerProcessesTable {
  worker_id: string;
  pid: number;
  hostname: string;
  heartbeat_at: Date;
}
