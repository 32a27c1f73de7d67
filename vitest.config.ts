import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Cluster and interop tests start real processes and ports; keep files from fighting over CPU.
    fileParallelism: false,
    reporters: ['default'],
  },
});
