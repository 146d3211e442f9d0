import { appendFileSync } from 'node:fs';
const file = process.env.WRITE_TRACE;
export function trace(what: string, extra = ''): void {
  if (file) appendFileSync(file, `${(performance.timeOrigin + performance.now()).toFixed(1)} ${what} ${extra}\n`);
}
