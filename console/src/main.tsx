import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createBrowserRouter, RouterProvider } from "react-router";
import { DocsPage, Layout } from "./App";
import { NotFoundPage } from "./pages/NotFoundPage";
import { RunListPage } from "./pages/RunListPage";
import { RunPage } from "./pages/RunPage";
import { WorkflowListPage } from "./pages/WorkflowListPage";
import { WorkflowPage } from "./pages/WorkflowPage";
import "./styles.css";

// Every URL is a page the server answers with this app (deep links work): /ui/..., /docs.
const router = createBrowserRouter([
  {
    element: <Layout />,
    children: [
      { path: "/ui", element: <WorkflowListPage /> },
      { path: "/ui/workflows/:name", element: <WorkflowPage /> },
      { path: "/ui/runs", element: <RunListPage /> },
      { path: "/ui/runs/:id", element: <RunPage /> },
      { path: "/docs", element: <DocsPage /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RouterProvider router={router} />
  </StrictMode>,
);
