import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router";
import { getJson } from "../api";
import { SourceProblems } from "../components/SourceProblems";
import { useTitle } from "../title";
import type { WorkflowList } from "../types";

/** The workflows this server can run, with a search box. */
export function WorkflowListPage() {
  const [list, setList] = useState<WorkflowList | null>(null);
  const [error, setError] = useState("");
  const [search, setSearch] = useState("");
  useTitle("Workflows");

  useEffect(() => {
    const abort = new AbortController();
    getJson<WorkflowList>("/workflows", abort.signal)
      .then(setList)
      .catch((caught: Error) => abort.signal.aborted || setError(caught.message));
    return () => abort.abort();
  }, []);

  const shown = useMemo(() => {
    const words = search.toLowerCase().split(/\s+/).filter(Boolean);
    return (list?.workflows ?? []).filter((workflow) => {
      const text = `${workflow.name} ${workflow.summary ?? ""}`.toLowerCase();
      return words.every((word) => text.includes(word));
    });
  }, [list, search]);

  return (
    <>
      <h1>Workflows</h1>
      <div className="toolbar">
        <label htmlFor="workflow-search">Search</label>
        <input
          id="workflow-search"
          type="search"
          placeholder="name or summary"
          value={search}
          onChange={(event) => setSearch(event.target.value)}
        />
      </div>
      {error ? <p className="error" role="alert">{error}</p> : null}
      {list ? <SourceProblems sources={list.channels} /> : null}
      {!list && !error ? <p className="muted">Loading…</p> : null}
      {list && shown.length === 0 ? (
        <p className="muted">{list.workflows.length ? "No workflow matches." : "No workflows."}</p>
      ) : null}
      <ul className="cards" aria-label="Workflows" data-testid="workflow-list">
        {shown.map((workflow) => (
          <li key={workflow.name} className="card">
            <Link to={`/ui/workflows/${encodeURIComponent(workflow.name)}`} className="card-title">
              {workflow.name}
            </Link>
            {workflow.summary ? <p>{workflow.summary}</p> : null}
            <p className="muted small">
              {workflow.versions[0]}
              {workflow.versions.length > 1 ? ` (and ${workflow.versions.length - 1} older)` : ""}
              {workflow.channel ? ` · ${workflow.channel}` : ""}
            </p>
          </li>
        ))}
      </ul>
    </>
  );
}
