// Every request of the console goes through apiFetch: it sends the session's bearer token and,
// when the server answers 401, asks the person for a token (once for all requests waiting)
// and tries again with it.

const TOKEN_KEY = "wtrunner.token";

/** Shows the token prompt; resolves with the token given, or null when it was dismissed. */
export type TokenAsker = (reason: { rejected: boolean; detail: string }) => Promise<string | null>;

let asker: TokenAsker | null = null;
let pending: Promise<string | null> | null = null;

export function setTokenAsker(next: TokenAsker | null): void {
  asker = next;
}

export function sessionToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setSessionToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The Authorization header for the session's token, if there is one. */
export function authHeaders(): Record<string, string> {
  const token = sessionToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** fetch, with the session's token; a 401 asks for a token and sends the request again. */
export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const token = sessionToken();
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401 || asker === null) return response;
    if (sessionToken() === token) setSessionToken(null);
    // pending is set before anything is awaited: requests answered 401 at the same time must
    // all wait for one prompt (a second prompt would replace the first, whose waiters would
    // then wait for ever)
    if (pending === null) {
      const ask = asker;
      pending = errorDetail(response.clone())
        .then((detail) => ask({ rejected: token !== null, detail }))
        .finally(() => {
          pending = null;
        });
    }
    const given = await pending;
    if (!given) return response;
    setSessionToken(given);
  }
}

/** An answer other than 2xx: its status and parsed JSON body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(describe(status, body));
  }
}

function describe(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return `${status}: ${detail}`;
  if (Array.isArray(detail)) {
    const messages = detail.map((item: { msg?: string; message?: string; loc?: unknown[] }) =>
      [item.loc?.join("."), item.msg ?? item.message].filter(Boolean).join(": "),
    );
    return `${status}: ${messages.join("; ")}`;
  }
  return `The server answered ${status}`;
}

async function errorDetail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { detail?: unknown };
    return typeof body.detail === "string" ? body.detail : "";
  } catch {
    return "";
  }
}

async function parse<T>(response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body as T;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return parse<T>(await apiFetch(path, { signal, headers: { Accept: "application/json" } }));
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, "Content-Type": "application/json" };
  }
  return parse<T>(await apiFetch(path, init));
}

/** "a=1&b=2" from an object, leaving out empty values. */
export function query(values: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
