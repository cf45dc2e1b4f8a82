import type { SourceStatus } from "../types";

/** The channels and prefixes that could not be read (their workflows are missing). */
export function SourceProblems({ sources }: { sources: SourceStatus[] }) {
  const failed = sources.filter((source) => source.error);
  if (!failed.length) return null;
  return (
    <div className="warning" role="status">
      <p>Some sources could not be read; their workflows are not listed:</p>
      <ul>
        {failed.map((source) => (
          <li key={source.url}>
            <code>{source.url}</code>: {source.error}
          </li>
        ))}
      </ul>
    </div>
  );
}
