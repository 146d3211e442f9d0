import v8 from 'node:v8';

/**
 * How far V8 lets the old generation grow past what the last full collection left alive, in
 * percent (V8's --heap-growing-percent; 0 leaves V8's own choice).
 *
 * Why set it: larksync's live heap during a 1,000,000-record Base sync stays near 40 MB, but V8
 * grows the old generation up to about 4x that before collecting again when collections look
 * cheap to it (they do here: mutator utilisation 0.99), so the process peaked at 200-300 MiB
 * resident, mostly garbage waiting to be collected. At 50 % the limit is 1.5x the live heap:
 * measured on the Base bench, peak RSS 170-182 MiB (was 203-302) at 20-50 % more CPU for the
 * extra full collections (and slower unthrottled syncs: 12,000-14,000 records/s against 17,000).
 * The flag is read at every collection, so setting it at runtime works. Shown by the Base bench
 * (HEAP_GROWING_PERCENT=0 vs 50), not by a test: V8's own growth varies from run to run (81 to 437
 * MiB on one synthetic workload), so a test could not tell the two apart reliably.
 */
export function tuneHeap(growingPercent: number): void {
  if (growingPercent > 0) v8.setFlagsFromString(`--heap-growing-percent=${growingPercent}`);
}
