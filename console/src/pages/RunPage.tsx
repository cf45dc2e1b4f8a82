import { useCallback, useEffect, useState } from "react";
import { Link, useParams } from "react-router";
import { ApiError, getJson, sendJson } from "../api";
import { JsonTree } from "../components/JsonTree";
import { LogView } from "../components/LogView";
import { StateBadge } from "../components/StateBadge";
import { duration, when } from "../format";
import { useTitle } from "../title";
import { FINAL_STATES, type RunRecord } from "../types";

const POLL_MS = 1000;

/** One run: its state (updated live), timings, package, logs, result or error; Cancel. */
export function RunPage() {
  const { id = "" } = useParams();
  const [run, setRun] = useState<RunRecord | null>(null);
  const [error, setError] = useState("");
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState("");
  const [, setTick] = useState(0);

  const final = run ? FINAL_STATES.has(run.state) : false;
  useTitle(run ? `${run.state} · run ${id}` : `Run ${id}`);

  useEffect(() => {
    const abort = new AbortController();
    let timer = 0;
    const load = async () => {
      try {
        const record = await getJson<RunRecord>(`/runs/${encodeURIComponent(id)}`, abort.signal);
        setRun(record);
        setError("");
        if (!FINAL_STATES.has(record.state)) timer = window.setTimeout(load, POLL_MS);
      } catch (caught) {
        if (abort.signal.aborted) return;
        setError(caught instanceof Error ? caught.message : String(caught));
        if (!(caught instanceof ApiError && caught.status === 404)) {
          timer = window.setTimeout(load, POLL_MS * 3);
        }
      }
    };
    setRun(null);
    void load();
    return () => {
      abort.abort();
      window.clearTimeout(timer);
    };
  }, [id]);

  // the running time shown goes on while the run does
  useEffect(() => {
    if (final || !run?.started_at) return;
    const timer = window.setInterval(() => setTick((tick) => tick + 1), 1000);
    return () => window.clearInterval(timer);
  }, [final, run?.started_at]);

  const cancel = useCallback(async () => {
    setCancelling(true);
    setCancelError("");
    try {
      setRun(await sendJson<RunRecord>("POST", `/runs/${encodeURIComponent(id)}/cancel`));
    } catch (caught) {
      setCancelError(caught instanceof Error ? caught.message : String(caught));
    } finally {
      setCancelling(false);
    }
  }, [id]);

  return (
    <>
      <p className="breadcrumbs">
        <Link to="/ui/runs">Runs</Link> /
      </p>
      <h1 className="run-title">
        Run <code>{id}</code> {run ? <StateBadge state={run.state} live /> : null}
      </h1>
      {error ? <p className="error" role="alert">{error}</p> : null}
      {run ? (
        <>
          <div className="actions">
            {!final ? (
              <button type="button" className="danger" onClick={cancel} disabled={cancelling}>
                {cancelling ? "Cancelling…" : "Cancel run"}
              </button>
            ) : null}
            <Link
              className="button"
              to={`/ui/workflows/${encodeURIComponent(run.package)}${
                run.resolved ? `?version=${encodeURIComponent(run.resolved.version)}` : ""
              }`}
            >
              Run this workflow again
            </Link>
          </div>
          {cancelError ? <p className="error" role="alert">{cancelError}</p> : null}
          <dl className="facts">
            <dt>Workflow</dt>
            <dd>
              <code>{run.matchspec}</code>
            </dd>
            <dt>Resolved package</dt>
            <dd data-testid="resolved">
              {run.resolved ? (
                <>
                  <code>
                    {run.resolved.name} {run.resolved.version} {run.resolved.build}
                  </code>
                  {run.resolved.channel ? <span className="muted"> · {run.resolved.channel}</span> : null}
                </>
              ) : (
                "—"
              )}
            </dd>
            <dt>Created</dt>
            <dd>{when(run.created_at)}</dd>
            <dt>Started</dt>
            <dd>{when(run.started_at)}</dd>
            <dt>Finished</dt>
            <dd>{when(run.finished_at)}</dd>
            <dt>Running time</dt>
            <dd>{duration(run.started_at, run.finished_at)}</dd>
            <dt>Workflow run id</dt>
            <dd>
              <code>{run.workflow_run_id || "—"}</code>
            </dd>
            <dt>Results URL</dt>
            <dd>
              <code className="wrap">{run.results_url}</code>
            </dd>
            <dt>Back end</dt>
            <dd>
              {run.invoker_type} <span className="muted">({run.front_door})</span>
            </dd>
          </dl>
          {run.outcome && (run.outcome.error || run.outcome.trace) ? (
            <section aria-labelledby="error-title" className="outcome-error">
              <h2 id="error-title">Error</h2>
              {run.outcome.error ? (
                <p className="error" data-testid="run-error">
                  {run.outcome.error}
                </p>
              ) : null}
              {run.outcome.trace ? (
                <details>
                  <summary>Trace</summary>
                  <pre className="trace">{run.outcome.trace}</pre>
                </details>
              ) : null}
            </section>
          ) : null}
          {run.outcome && run.outcome.result !== undefined && run.outcome.result !== null ? (
            <section aria-labelledby="result-title">
              <h2 id="result-title">Result</h2>
              <JsonTree value={run.outcome.result} />
            </section>
          ) : null}
          <LogView runId={run.id} />
        </>
      ) : null}
    </>
  );
}
