import { describe, expect, it } from 'vitest';
import { KeyIndex } from '../../src/writes/upsert-keys.js';

// The index keeps one id per value without a Set (the usual case) and a Set once a value is held
// twice; these cases cover the moves between the two shapes.
describe('KeyIndex', () => {
  it('finds the records holding a value as they are learnt, moved, doubled and forgotten', () => {
    const ix = new KeyIndex('tbl', 'Order', 'scan');
    ix.learn('r1', 'A');
    ix.learn('r2', 'B');
    expect(ix.lookup('A')).toEqual(['r1']);
    ix.learn('r1', 'A'); // learnt again: still one holder
    expect(ix.lookup('A')).toEqual(['r1']);
    ix.learn('r3', 'A'); // a second record with the same key
    expect(ix.lookup('A').sort()).toEqual(['r1', 'r3']);
    ix.learn('r1', 'C'); // r1 now holds C
    expect(ix.lookup('A')).toEqual(['r3']);
    expect(ix.lookup('C')).toEqual(['r1']);
    expect(ix.valueHeldBy('r1')).toBe('C');
    ix.forget('r3');
    expect(ix.lookup('A')).toEqual([]);
    ix.learn('r2', 'A'); // B's only holder moves to A
    expect(ix.lookup('B')).toEqual([]);
    expect(ix.lookup('A')).toEqual(['r2']);
  });

  it('in search mode adds what a search found, less the records this job deleted or moved', () => {
    const ix = new KeyIndex('tbl', 'Order', 'search');
    ix.learn('r1', 'A');
    ix.forget('r2');
    ix.learn('r3', 'Z');
    expect(ix.lookup('A', ['r2', 'r3', 'r4']).sort()).toEqual(['r1', 'r4']);
  });

  it('built from what larksync holds: the same answers as learning each record', () => {
    const known = new Map<string, string | undefined>([
      ['r1', 'A'],
      ['r2', undefined],
      ['r3', 'A'],
      ['r4', 'B'],
    ]);
    const ix = KeyIndex.fromKnown('tbl', 'Order', known);
    expect(ix.lookup('A').sort()).toEqual(['r1', 'r3']);
    expect(ix.lookup('B')).toEqual(['r4']);
    expect(ix.valueHeldBy('r2')).toBeUndefined();
    ix.learn('r3', 'C');
    expect(ix.lookup('A')).toEqual(['r1']);
    ix.forget('r4');
    expect(ix.lookup('B')).toEqual([]);
  });
});
