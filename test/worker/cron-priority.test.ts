import { parseCrontab } from 'graphile-worker';
import { describe, expect, it } from 'vitest';
import { CRONTAB } from '../../src/worker/tasks.js';

// The minute's token refresh shares the urgent runner's 4 slots with event drains, which a flood of
// pushes keeps queued. graphile-worker takes queued jobs by priority first (lower runs first, 0 by
// default), so the refresh goes ahead of every queued drain instead of behind them; a drain's own
// time budget (test/events/shard-drain.test.ts) frees a slot soon. In `npm run bench -- contention`
// idle tenants' tokens were refreshed 28.5 s after the cron's minute began with neither, 14.1 to
// 38.5 s with the priority alone, and 1.5 to 1.7 s with both.

describe('the crontab', () => {
  it('runs refresh_tokens ahead of queued urgent jobs, and every other item at the default priority', () => {
    const items = parseCrontab(CRONTAB);
    const refresh = items.find((i) => i.task === 'refresh_tokens');
    expect(refresh?.options.priority).toBeLessThan(0);
    for (const i of items.filter((x) => x.task !== 'refresh_tokens')) expect(i.options.priority ?? 0).toBe(0);
  });
});
