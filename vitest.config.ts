import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // tests that trace processes or fill memory must not fight over 2 cores
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
});
