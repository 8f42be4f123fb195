// Builds the Kumeo web UI into the Python package (kumeo_iac/dashboard/static), which `kumeo dashboard` serves.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

const out = fileURLToPath(new URL('../kumeo_iac/dashboard/static', import.meta.url));

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: out,
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` next to `kumeo dashboard --port 8765`: the API is proxied, the grammar read from editors/.
    proxy: { '/api': 'http://127.0.0.1:8765' },
    fs: { allow: ['..'] },
  },
});
