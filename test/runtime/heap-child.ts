// A process shaped like a sync's heap: ~40 MB that stays alive, and pages' worth of objects that
// live long enough to be promoted and then die. Prints the largest heapTotal seen (MiB).
import { tuneHeap } from '../../src/runtime/heap.js';

tuneHeap(Number(process.env.HEAP_GROWING_PERCENT ?? 0));
const live: string[][] = [];
for (let i = 0; i < 400; i += 1) live.push(Array.from({ length: 1000 }, (_, j) => `live-${i}-${j}-`.padEnd(64, 'x')));
const ring: Array<Array<Record<string, string>>> = [];
let peak = 0;
for (let page = 0; page < 1500; page += 1) {
  ring.push(Array.from({ length: 500 }, (_, j) => ({ id: `rec-${page}-${j}`, text: `value ${page} ${j}`.padEnd(200, 'y') })));
  if (ring.length > 8) ring.shift();
  if (page % 10 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal);
}
process.stdout.write(String(Math.round(peak / 2 ** 20)) + ' ' + live.length);
