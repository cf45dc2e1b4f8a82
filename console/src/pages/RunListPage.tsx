import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { getJson, query } from "../api";
import { StateBadge } from "../components/StateBadge";
import { duration, when } from "../format";
import { useTitle } from "../title";
import { RUN_STATES, type RunList, type WorkflowList } from "../types";

const PAGE_SIZE = 25;
const REFRESH_MS = 5000;

/** Recorded runs, newest first: filters by state and package, pages (`?limit=N` runs each,
 * default 25), refreshed on its own. */
export function RunListPage() {
  const [search, setSearch] = useSearchParams();
  const state = search.get("state") ?? "";
  const packageName = search.get("package") ?? "";
  const cursor = search.get("cursor") ?? "";
  const limit = Math.min(Math.max(Number(search.get("limit")) || PAGE_SIZE, 1), 500);
  const [page, setPage] = useState<RunList | null>(null);
  const [error, setError] = useState("");
  const [autoRefresh, setAutoRefresh] = useState(true);
  const [packages, setPackages] = useState<string[]>([]);
  const [packageInput, setPackageInput] = useState(packageName);
  // the cursors of the pages before this one, for "Newer"
  const [previous, setPrevious] = useState<string[]>([]);

  useTitle("Runs");
  useEffect(() => setPackageInput(packageName), [packageName]);

  useEffect(() => {
    const abort = new AbortController();
    getJson<WorkflowList>("/workflows", abort.signal)
      .then((list) => setPackages(list.workflows.map((workflow) => workflow.name)))
      .catch(() => undefined); // only suggestions
    return () => abort.abort();
  }, []);

  useEffect(() => {
    const abort = new AbortController();
    let timer = 0;
    const load = async () => {
      try {
        const path = `/runs${query({ state, package: packageName, cursor, limit })}`;
        setPage(await getJson<RunList>(path, abort.signal));
        setError("");
      } catch (caught) {
        if (abort.signal.aborted) return;
        setError(caught instanceof Error ? caught.message : String(caught));
      }
      // only the newest page changes by itself
      if (autoRefresh && !cursor && !abort.signal.aborted) {
        timer = window.setTimeout(load, REFRESH_MS);
      }
    };
    void load();
    return () => {
      abort.abort();
      window.clearTimeout(timer);
    };
  }, [state, packageName, cursor, limit, autoRefresh]);

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(search);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    if (!("cursor" in changes)) {
      next.delete("cursor");
      setPrevious([]);
    }
    setSearch(next);
  };

  const nextCursor = page?.next
    ? new URL(page.next, window.location.origin).searchParams.get("cursor") ?? ""
    : "";

  return (
    <>
      <h1>Runs</h1>
      <form
        className="toolbar filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
          update({ package: packageInput.trim() });
        }}
      >
        <span className="field">
          <label htmlFor="filter-state">State</label>
          <select
            id="filter-state"
            value={state}
            onChange={(event) => update({ state: event.target.value })}
          >
            <option value="">any</option>
            {RUN_STATES.map((item) => (
              <option key={item} value={item}>
                {item}
              </option>
            ))}
          </select>
        </span>
        <span className="field">
          <label htmlFor="filter-package">Package</label>
          <input
            id="filter-package"
            list="package-names"
            placeholder="any"
            value={packageInput}
            onChange={(event) => setPackageInput(event.target.value)}
          />
        </span>
        <datalist id="package-names">
          {packages.map((name) => (
            <option key={name} value={name} />
          ))}
        </datalist>
        <button type="submit">Filter</button>
        <label className="inline">
          <input
            type="checkbox"
            checked={autoRefresh}
            onChange={(event) => setAutoRefresh(event.target.checked)}
          />
          Auto-refresh
        </label>
      </form>
      {error ? <p className="error" role="alert">{error}</p> : null}
      {!page && !error ? <p className="muted">Loading…</p> : null}
      {page && page.runs.length === 0 ? <p className="muted">No runs.</p> : null}
      {page && page.runs.length > 0 ? (
        <div className="table-scroll">
          <table className="runs stacked" data-testid="runs-table">
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">State</th>
                <th scope="col">Package</th>
                <th scope="col">Created</th>
                <th scope="col">Running time</th>
              </tr>
            </thead>
            <tbody>
              {page.runs.map((run) => (
                <tr key={`${run.id}-${run.attempt}`}>
                  <td data-label="Run">
                    <Link to={`/ui/runs/${encodeURIComponent(run.id)}`}>
                      <code>{run.id}</code>
                    </Link>
                  </td>
                  <td data-label="State">
                    <StateBadge state={run.state} />
                  </td>
                  <td data-label="Package">
                    <span>
                      {run.package}
                      {run.resolved ? <span className="muted"> {run.resolved.version}</span> : null}
                    </span>
                  </td>
                  <td data-label="Created">{when(run.created_at)}</td>
                  <td data-label="Running time">{duration(run.started_at, run.finished_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <nav className="pager" aria-label="Pages">
        <button
          type="button"
          disabled={!cursor}
          onClick={() => {
            const before = previous.slice(0, -1);
            setPrevious(before);
            update({ cursor: previous[previous.length - 1] ?? "" });
          }}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!nextCursor}
          onClick={() => {
            setPrevious([...previous, cursor]);
            update({ cursor: nextCursor });
          }}
        >
          Older
        </button>
      </nav>
    </>
  );
}
