import { defineConfig } from 'vite';

// Plain Vite: Preact's JSX through Vite's own transformer (no plugin), assets under /assets/
// so the control plane's SPA fallback can serve index.html for every client-side route.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a control plane on :8000 (make run).
    proxy: { '/api': { target: 'http://127.0.0.1:8000', ws: true } },
  },
});
