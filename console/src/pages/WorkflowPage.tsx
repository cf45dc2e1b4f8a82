import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema, UiSchema } from "@rjsf/utils";
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { ApiError, getJson, query, sendJson } from "../api";
import { SourceProblems } from "../components/SourceProblems";
import { config } from "../config";
import { isRequestItems, isSchemaItems, toErrorSchema } from "../errors";
import { formValidator } from "../formValidator";
import { newRunId, when } from "../format";
import { useTitle } from "../title";
import type { RunRecord, WorkflowDetail } from "../types";

interface FormDocument {
  schema: RJSFSchema;
  uiSchema: UiSchema;
}

// Options of POST /runs the console lets a person set; everything else takes the defaults.
interface RunOptions {
  resultsUrl: string;
  mockIo: boolean;
  timeout: string;
}

/** A workflow: its versions and builds, and the form of the chosen version, which runs it. */
export function WorkflowPage() {
  const { name = "" } = useParams();
  const [search, setSearch] = useSearchParams();
  const navigate = useNavigate();
  const [detail, setDetail] = useState<WorkflowDetail | null>(null);
  const [loadError, setLoadError] = useState("");
  const [form, setForm] = useState<FormDocument | null>(null);
  const [formError, setFormError] = useState("");
  const [formData, setFormData] = useState<unknown>(undefined);
  const [extraErrors, setExtraErrors] = useState<ErrorSchema | undefined>(undefined);
  const [options, setOptions] = useState<RunOptions>({
    resultsUrl: config.resultsUrl,
    mockIo: false,
    timeout: "",
  });
  const [optionErrors, setOptionErrors] = useState<Partial<Record<keyof RunOptions, string>>>({});
  const [submitError, setSubmitError] = useState("");
  const [submitting, setSubmitting] = useState(false);
  useTitle(name);

  const versions = useMemo(
    () => [...new Set((detail?.versions ?? []).map((entry) => entry.version))],
    [detail],
  );
  const version = search.get("version") ?? versions[0] ?? "";
  const matchspec = version ? `${name}==${version}` : "";

  useEffect(() => {
    const abort = new AbortController();
    setDetail(null);
    setLoadError("");
    getJson<WorkflowDetail>(`/workflows/${encodeURIComponent(name)}`, abort.signal)
      .then(setDetail)
      .catch((caught: Error) => abort.signal.aborted || setLoadError(caught.message));
    return () => abort.abort();
  }, [name]);

  useEffect(() => {
    if (!matchspec) return;
    const abort = new AbortController();
    setForm(null);
    setFormError("");
    setFormData(undefined);
    setExtraErrors(undefined);
    getJson<Record<string, unknown>>(`/rjsf${query({ matchspec })}`, abort.signal)
      .then((document) => {
        const { uiSchema, ...schema } = document;
        setForm({ schema: schema as RJSFSchema, uiSchema: (uiSchema ?? {}) as UiSchema });
      })
      .catch((caught: Error) => abort.signal.aborted || setFormError(caught.message));
    return () => abort.abort();
  }, [matchspec]);

  const checkOptions = (): boolean => {
    const problems: typeof optionErrors = {};
    if (!options.resultsUrl.trim()) problems.resultsUrl = "A results URL is required";
    if (options.timeout && !(Number(options.timeout) > 0)) {
      problems.timeout = "The timeout must be a number of seconds above 0";
    }
    setOptionErrors(problems);
    return Object.keys(problems).length === 0;
  };

  const submit = async (data: unknown) => {
    setSubmitError("");
    setExtraErrors(undefined);
    if (!checkOptions()) return;
    setSubmitting(true);
    try {
      let params: unknown;
      try {
        params = await sendJson("POST", `/formdata-to-params${query({ matchspec })}`, data ?? {});
      } catch (caught) {
        const detail = caught instanceof ApiError ? (caught.body as { detail?: unknown })?.detail : null;
        if (caught instanceof ApiError && caught.status === 422 && isSchemaItems(detail)) {
          setExtraErrors(toErrorSchema(detail));
          setSubmitError("The server found problems in the form: see the marked fields.");
          return;
        }
        throw caught;
      }
      const runId = newRunId();
      const body: Record<string, unknown> = {
        params,
        execution_mode: "sequential",
        mock_io: options.mockIo,
        results_url: options.resultsUrl.trim().replaceAll("{run_id}", runId),
        workflow_run_id: runId,
      };
      if (options.timeout) body.timeout = Number(options.timeout);
      try {
        const run = await sendJson<RunRecord>("POST", `/runs${query({ matchspec })}`, body);
        navigate(`/ui/runs/${encodeURIComponent(run.id)}`);
      } catch (caught) {
        const detail = caught instanceof ApiError ? (caught.body as { detail?: unknown })?.detail : null;
        if (caught instanceof ApiError && caught.status === 422 && isRequestItems(detail)) {
          const problems: typeof optionErrors = {};
          for (const item of detail) {
            const field = item.loc[item.loc.length - 1];
            if (field === "results_url") problems.resultsUrl = item.msg;
            else if (field === "timeout") problems.timeout = item.msg;
          }
          if (Object.keys(problems).length) {
            setOptionErrors(problems);
            return;
          }
        }
        throw caught;
      }
    } catch (caught) {
      setSubmitError(caught instanceof Error ? caught.message : String(caught));
    } finally {
      setSubmitting(false);
    }
  };

  const builds = (detail?.versions ?? []).filter((entry) => entry.version === version);

  return (
    <>
      <p className="breadcrumbs">
        <Link to="/ui/">Workflows</Link> /
      </p>
      <h1>{name}</h1>
      {detail?.summary ? <p className="lead">{detail.summary}</p> : null}
      {loadError ? <p className="error" role="alert">{loadError}</p> : null}
      {detail ? <SourceProblems sources={detail.channels} /> : null}
      {detail ? (
        <div className="toolbar">
          <label htmlFor="version-picker">Version</label>
          <select
            id="version-picker"
            value={version}
            onChange={(event) => setSearch({ version: event.target.value }, { replace: true })}
          >
            {versions.map((item) => (
              <option key={item} value={item}>
                {item}
              </option>
            ))}
          </select>
          <details className="builds">
            <summary>
              {builds.length} build{builds.length === 1 ? "" : "s"} of {version}
            </summary>
            <table>
              <thead>
                <tr>
                  <th scope="col">Build</th>
                  <th scope="col">Date</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {builds.map((entry) => (
                  <tr key={`${entry.build}-${entry.channel}-${entry.prefix}`}>
                    <td>
                      <code>{entry.build}</code>
                    </td>
                    <td>{when(entry.timestamp)}</td>
                    <td>
                      <code>{entry.prefix ?? entry.channel}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </div>
      ) : null}
      {formError ? <p className="error" role="alert">{formError}</p> : null}
      {matchspec && !form && !formError ? <p className="muted">Loading the form…</p> : null}
      {form ? (
        <Form
          key={matchspec}
          className="workflow-form"
          schema={form.schema}
          uiSchema={form.uiSchema}
          validator={formValidator}
          formData={formData}
          extraErrors={extraErrors}
          showErrorList={false}
          noHtml5Validate
          focusOnFirstError
          disabled={submitting}
          onChange={(event) => setFormData(event.formData)}
          onSubmit={(event) => void submit(event.formData)}
        >
          <RunOptionsFields options={options} errors={optionErrors} onChange={setOptions} />
          {submitError ? (
            <p className="error" role="alert" data-testid="submit-error">
              {submitError}
            </p>
          ) : null}
          <div className="actions">
            <button type="submit" className="primary" disabled={submitting}>
              {submitting ? "Starting…" : "Run"}
            </button>
          </div>
        </Form>
      ) : null}
    </>
  );
}

function RunOptionsFields({
  options,
  errors,
  onChange,
}: {
  options: RunOptions;
  errors: Partial<Record<keyof RunOptions, string>>;
  onChange: (options: RunOptions) => void;
}) {
  const set = (change: Partial<RunOptions>) => onChange({ ...options, ...change });
  return (
    <fieldset className="run-options">
      <legend>Run</legend>
      <div className="form-group">
        <label htmlFor="run-results-url" className="control-label">
          Results URL<span className="required">*</span>
        </label>
        <input
          id="run-results-url"
          className="form-control"
          value={options.resultsUrl}
          aria-describedby="run-results-url-help"
          aria-invalid={errors.resultsUrl ? true : undefined}
          onChange={(event) => set({ resultsUrl: event.target.value })}
        />
        <p id="run-results-url-help" className="help-block">
          Where the workflow writes result.json. <code>{"{run_id}"}</code> is replaced by the
          run&apos;s id.
        </p>
        {errors.resultsUrl ? <p className="text-danger">{errors.resultsUrl}</p> : null}
      </div>
      <div className="form-group checkbox">
        <label htmlFor="run-mock-io">
          <input
            id="run-mock-io"
            type="checkbox"
            checked={options.mockIo}
            onChange={(event) => set({ mockIo: event.target.checked })}
          />
          Mock I/O (the workflow uses sample data instead of its connections)
        </label>
      </div>
      <div className="form-group">
        <label htmlFor="run-timeout" className="control-label">
          Timeout (seconds)
        </label>
        <input
          id="run-timeout"
          className="form-control"
          type="number"
          min="1"
          step="any"
          inputMode="decimal"
          placeholder="none"
          value={options.timeout}
          aria-invalid={errors.timeout ? true : undefined}
          onChange={(event) => set({ timeout: event.target.value })}
        />
        {errors.timeout ? <p className="text-danger">{errors.timeout}</p> : null}
      </div>
    </fieldset>
  );
}
