import { useEffect, useState } from "react";
import SwaggerUI from "swagger-ui-react";
import "swagger-ui-react/swagger-ui.css";
import { authHeaders, getJson } from "../api";
import { useTitle } from "../title";

/** The API's documentation: /openapi.json rendered by Swagger UI (bundled; loaded only here).
 * Requests made with "Try it out" carry the session's token. */
export default function DocsPage() {
  const [spec, setSpec] = useState<object | null>(null);
  const [error, setError] = useState("");
  useTitle("API documentation");

  useEffect(() => {
    const abort = new AbortController();
    getJson<object>("/openapi.json", abort.signal)
      .then(setSpec)
      .catch((caught: Error) => abort.signal.aborted || setError(caught.message));
    return () => abort.abort();
  }, []);

  if (error) return <p className="error" role="alert">{error}</p>;
  if (!spec) return <p className="muted">Loading the API description…</p>;
  return (
    <div className="docs" data-testid="api-docs">
      <SwaggerUI
        spec={spec}
        docExpansion="list"
        deepLinking={false}
        requestInterceptor={(request) => {
          request.headers = { ...request.headers, ...authHeaders() };
          return request;
        }}
      />
    </div>
  );
}
