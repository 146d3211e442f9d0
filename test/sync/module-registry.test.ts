import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODULES, MODULE_RATE_LIMITS, STREAM_CATALOG } from '../../src/connectors/index.js';
import { loadPhaseState } from '../../src/sync/engine/checkpoints.js';
import { mergeLimits, perSecond, bucketOf } from '../../src/sync/pacer.js';
import { streamCatalog } from '../../src/sync/streams.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const CONNECTORS = path.resolve(import.meta.dirname, '../../src/connectors');

/** The Lark API names a module folder's sources pass to ctx.lark.call(…). */
function apisCalledIn(folder: string): Set<string> {
  const out = new Set<string>();
  for (const f of readdirSync(folder).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(path.join(folder, f), 'utf8');
    for (const m of text.matchAll(/\.call(?:<[^()]*?>)?\(\s*'([a-z_.]+)'/g)) out.add(m[1]!);
  }
  return out;
}

describe('modules describe themselves: the registry derives every central list', () => {
  it('every module declares streams, a form, and a rate limit for every Lark API its folder calls', () => {
    for (const [name, m] of Object.entries(MODULES)) {
      expect(m.name).toBe(name);
      expect(Object.keys(m.streams).length, name).toBeGreaterThan(0);
      expect(m.form.fields.length, name).toBeGreaterThan(0);
      for (const phase of m.phases) expect(phase.stateSchema, `${name}.${phase.name}`).toBeDefined();
      const called = apisCalledIn(path.join(CONNECTORS, name));
      expect(called.size, name).toBeGreaterThan(0);
      for (const api of called) expect(Object.keys(m.limits), `${name} calls ${api}`).toContain(api);
    }
    // The catalog is the union of the modules' streams.
    expect(STREAM_CATALOG.names().sort()).toEqual(Object.values(MODULES).flatMap((m) => Object.keys(m.streams)).sort());
    expect(MODULE_RATE_LIMITS.size).toBeGreaterThan(0);
  });

  it('refuses a stream declared twice, a name that is not an identifier, and two different limits for one API', () => {
    const def = { columns: ['a'] };
    expect(() => streamCatalog([{ name: 'x', streams: { s: def } }, { name: 'y', streams: { s: def } }])).toThrow(/declared by modules x and y/);
    expect(() => streamCatalog([{ name: 'x', streams: { 'bad name; drop table': def } }])).toThrow(/not a lower-case identifier/);
    expect(() => mergeLimits([['x', { api: perSecond(5) }], ['y', { api: perSecond(5) }]])).not.toThrow();
    expect(() => mergeLimits([['x', { api: perSecond(5) }], ['y', { api: perSecond(20) }]])).toThrow(/different rate limits for api/);
    expect(() => mergeLimits([['x', { api: perSecond(5) }], ['y', { api: perSecond(5, 'app') }]])).toThrow(/different rate limits/);
  });

  it('a per-app limit shares one bucket across the tenants of the app', () => {
    expect(bucketOf('cli_a', 't1', 'docs.content', perSecond(5, 'app'))).toBe(bucketOf('cli_a', 't2', 'docs.content', perSecond(5, 'app')));
    expect(bucketOf('cli_a', 't1', 'bitable.records.search', perSecond(20))).not.toBe(bucketOf('cli_a', 't2', 'bitable.records.search', perSecond(20)));
  });
});

describe('checkpoints are checked against the phase state schema', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('resumes a state that fits, and starts afresh from one that does not (an older version, a hand edit)', async () => {
    const phase = { name: 'walk', stateSchema: Type.Object({ v: Type.Literal(2), page: Type.Integer() }) };
    const store = (s: unknown) =>
      db.db
        .insertInto('stream_states')
        .values({ tenant_key: 't', module: 'm', stream: 'walk', state: JSON.stringify({ s, done: false }), run_id: null })
        .onConflict((oc) => oc.columns(['tenant_key', 'module', 'stream']).doUpdateSet({ state: (eb) => eb.ref('excluded.state') }))
        .execute();
    await store({ v: 2, page: 7 });
    expect((await loadPhaseState(db.db, 't', 'm', phase))?.state.s).toEqual({ v: 2, page: 7 });
    await store({ v: 1, page: 7 });
    expect(await loadPhaseState(db.db, 't', 'm', phase)).toBeUndefined();
    await store({ v: 2, page: 'seven' });
    expect(await loadPhaseState(db.db, 't', 'm', phase)).toBeUndefined();
  });
});
