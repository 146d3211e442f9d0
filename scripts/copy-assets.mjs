// Copies what the compiler does not emit (the web pages' templates and static files) next to the
// compiled code, so `node dist/src/server.js` finds them where the sources do.
import { cpSync, existsSync } from 'node:fs';
for (const dir of ['src/web/views', 'src/web/public']) {
  if (existsSync(dir)) cpSync(dir, `dist/${dir}`, { recursive: true });
}
