import { lazy, Suspense } from "react";
import { NavLink, Outlet } from "react-router";
import { TokenPrompt } from "./TokenPrompt";
import { config } from "./config";

export const DocsPage = lazy(() => import("./pages/DocsPage"));

/** The frame of every page: a skip link, the navigation, the page, the token prompt. */
export function Layout() {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">wtrunner</span>
        <nav aria-label="Main">
          <NavLink to="/ui/" end>
            Workflows
          </NavLink>
          <NavLink to="/ui/runs">Runs</NavLink>
          <NavLink to="/docs">API docs</NavLink>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Outlet />
        </Suspense>
      </main>
      <footer className="muted small">wtrunner {config.version ?? ""}</footer>
      <TokenPrompt />
    </>
  );
}
