import { useEffect, useRef, useState, type FormEvent } from "react";
import { setTokenAsker } from "./api";

interface Request {
  rejected: boolean;
  detail: string;
  resolve: (token: string | null) => void;
}

/** The dialog that asks for an access token when the server answers 401. The token is kept
 * for this browser session only (sessionStorage). */
export function TokenPrompt() {
  const [request, setRequest] = useState<Request | null>(null);
  const [token, setToken] = useState("");
  const dialog = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    setTokenAsker(
      (reason) =>
        new Promise((resolve) => {
          setToken("");
          setRequest({ ...reason, resolve });
        }),
    );
    return () => setTokenAsker(null);
  }, []);

  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (request && !element.open) element.showModal();
    if (!request && element.open) element.close();
  }, [request]);

  const finish = (value: string | null) => {
    request?.resolve(value);
    setRequest(null);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (token.trim()) finish(token.trim());
  };

  return (
    <dialog
      ref={dialog}
      className="token-prompt"
      aria-labelledby="token-title"
      onCancel={(event) => {
        event.preventDefault();
        finish(null);
      }}
    >
      <form onSubmit={submit}>
        <h2 id="token-title">Sign in with an access token</h2>
        <p>
          {request?.rejected
            ? "The server did not accept that token. Enter another one."
            : "This wtrunner server asks for an access token."}
          {request?.detail ? <span className="muted"> ({request.detail})</span> : null}
        </p>
        <label htmlFor="token-input">Access token</label>
        <input
          id="token-input"
          type="password"
          autoComplete="off"
          autoFocus
          value={token}
          onChange={(event) => setToken(event.target.value)}
        />
        <p className="muted small">Kept for this browser session only.</p>
        <div className="actions">
          <button type="submit" className="primary" disabled={!token.trim()}>
            Use token
          </button>
          <button type="button" onClick={() => finish(null)}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
