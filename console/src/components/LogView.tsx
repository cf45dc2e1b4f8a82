import { useEffect, useRef, useState } from "react";
import { apiFetch } from "../api";

// The page keeps the end of the output only: a workflow may write megabytes.
const MAX_CHARS = 200_000;

/** The run's stdout and stderr, followed live (`GET /runs/{id}/logs?follow=1` streams them
 * until the run ends). */
export function LogView({ runId }: { runId: string }) {
  const [text, setText] = useState("");
  const [cut, setCut] = useState(false);
  const [status, setStatus] = useState<"following" | "ended" | "error">("following");
  const [error, setError] = useState("");
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    const abort = new AbortController();
    let buffer = "";
    let frame = 0;
    const flush = () => {
      frame = 0;
      if (buffer.length > MAX_CHARS) {
        buffer = buffer.slice(buffer.length - MAX_CHARS);
        setCut(true);
      }
      setText(buffer);
    };
    setText("");
    setCut(false);
    setStatus("following");
    (async () => {
      try {
        const response = await apiFetch(`/runs/${encodeURIComponent(runId)}/logs?follow=1`, {
          signal: abort.signal,
        });
        if (!response.ok || !response.body) {
          setError(`The logs could not be read (${response.status})`);
          setStatus("error");
          return;
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += value;
          if (!frame) frame = requestAnimationFrame(flush);
        }
        cancelAnimationFrame(frame);
        flush();
        setStatus("ended");
      } catch (caught) {
        if (abort.signal.aborted) return;
        setError(caught instanceof Error ? caught.message : String(caught));
        setStatus("error");
      }
    })();
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
  }, [runId]);

  useEffect(() => {
    if (stick.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [text]);

  return (
    <section aria-labelledby="logs-title">
      <h2 id="logs-title">
        Logs{" "}
        <span className="muted small" data-testid="logs-status">
          {status === "following" ? "following…" : status === "ended" ? "complete" : ""}
        </span>
      </h2>
      {cut ? <p className="muted small">Only the last {MAX_CHARS / 1000} k characters are shown.</p> : null}
      {error ? <p className="error">{error}</p> : null}
      <pre
        ref={box}
        className="logs"
        data-testid="logs"
        tabIndex={0}
        aria-label="Workflow output"
        onScroll={(event) => {
          const element = event.currentTarget;
          stick.current = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
        }}
      >
        {text || (status === "following" ? "(no output yet)" : "(no output)")}
      </pre>
    </section>
  );
}
