import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real nats-server processes, SQLite files and child processes: keep parallelism modest on 2 cores.
    maxWorkers: 2,
    env: { ICE_LOG_LEVEL: process.env.ICE_LOG_LEVEL ?? 'silent' },
  },
});
