import { parseCrontab } from 'graphile-worker';
import { describe, expect, it } from 'vitest';
import { CRONTAB } from '../../src/worker/tasks.js';

// The minute's token refresh shares the urgent runner's 4 slots with event drains, which a flood of
// pushes keeps queued. graphile-worker takes queued jobs by priority first (lower runs first, 0 by
// default), so the refresh goes ahead of every queued drain instead of behind them. In `npm run
// bench -- contention` (200 pushes/s beside 20 syncs) idle tenants' tokens were refreshed 28.5 s
// after the cron's minute began without it and 18.3 s with it (one run each; 0.2-2.2 s with
// nothing syncing).

describe('the crontab', () => {
  it('runs refresh_tokens ahead of queued urgent jobs, and every other item at the default priority', () => {
    const items = parseCrontab(CRONTAB);
    const refresh = items.find((i) => i.task === 'refresh_tokens');
    expect(refresh?.options.priority).toBeLessThan(0);
    for (const i of items.filter((x) => x.task !== 'refresh_tokens')) expect(i.options.priority ?? 0).toBe(0);
  });
});
