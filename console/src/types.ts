// The shapes of wtrunner's API answers the console reads (see /openapi.json).

export type RunState =
  | "queued"
  | "resolving"
  | "running"
  | "submitted"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "lost";

export const RUN_STATES: RunState[] = [
  "queued",
  "resolving",
  "running",
  "submitted",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "lost",
];

export const FINAL_STATES: ReadonlySet<RunState> = new Set([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "lost",
]);

export interface SourceStatus {
  url: string;
  source: "channel" | "prefix";
  error: string | null;
}

export interface WorkflowEntry {
  name: string;
  versions: string[];
  summary: string | null;
  channel: string | null;
}

export interface WorkflowList {
  workflows: WorkflowEntry[];
  channels: SourceStatus[];
}

export interface WorkflowVersion {
  version: string;
  build: string;
  build_number: number;
  timestamp: string | null;
  channel: string | null;
  subdir: string;
  source: "channel" | "prefix";
  prefix: string | null;
}

export interface WorkflowDetail {
  name: string;
  summary: string | null;
  versions: WorkflowVersion[];
  channels: SourceStatus[];
}

export interface RunOutcome {
  kind: string;
  result?: unknown;
  error?: string | null;
  trace?: string | null;
  exit_code?: number | null;
}

export interface RunRecord {
  id: string;
  attempt: number;
  workflow_run_id: string;
  package: string;
  matchspec: string;
  resolved: { name: string; version: string; build: string; channel?: string | null } | null;
  invoker_type: string;
  state: RunState;
  front_door: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  outcome: RunOutcome | null;
  results_url: string;
  cancel_requested: boolean;
  client?: string | null;
}

export interface RunList {
  runs: RunRecord[];
  next: string | null;
}

/** A field of a request the server refused (422, FastAPI's shape). */
export interface RequestErrorItem {
  type: string;
  loc: (string | number)[];
  msg: string;
}

/** Input that failed the workflow's JSON Schema (422, jsonschema's shape). */
export interface ValidationErrorItem {
  message: string;
  path: (string | number)[];
  validator: string;
}
