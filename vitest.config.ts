import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Files run in parallel, each against its own database; 2 workers fit the 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    // A worker keeps its module graph from file to file instead of importing the app again for
    // each: that import (~4 s a file on a loaded 2-core machine, larger than most files' tests)
    // was about 40 % of the run's worker time. Each file still starts its own stack on its own
    // database; what it shares with the next file in its worker is module-level state (caches in
    // src) and anything it leaves running, so a file stops every stack, worker and process it
    // starts (afterAll). No file mocks a module or fakes timers; one that must would need its own
    // project with isolate: true.
    isolate: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
  },
});
