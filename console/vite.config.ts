import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The bundle is committed inside the Python package and served by wtrunner at /ui/
// (see wtrunner/api/console.py): the same sources and lockfile must give the same bytes.
export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "../wtrunner/console_dist", // relative to this folder
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // The API documentation page (Swagger UI) is its own chunk, loaded only on /docs.
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` next to `wtrunner serve` on its default port
    proxy: Object.fromEntries(
      ["/workflows", "/runs", "/rjsf", "/formdata-to-params", "/openapi.json"].map((path) => [
        path,
        "http://127.0.0.1:8080",
      ]),
    ),
  },
});
