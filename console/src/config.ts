/** What the server writes into the page (wtrunner/api/console.py): the console's settings. */
export interface ConsoleConfig {
  /** The results URL proposed for a run; `{run_id}` becomes the run's workflow_run_id. */
  resultsUrl: string;
  version?: string;
}

function readConfig(): ConsoleConfig {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="wtrunner-config"]');
  try {
    const parsed = JSON.parse(meta?.content || "{}") as Partial<ConsoleConfig>;
    return { resultsUrl: parsed.resultsUrl ?? "", version: parsed.version };
  } catch {
    return { resultsUrl: "" };
  }
}

export const config: ConsoleConfig = readConfig();
