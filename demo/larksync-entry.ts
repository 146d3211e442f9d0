/**
 * The larksync process the demo starts: `src/server.ts`, unchanged, plus two rules. It runs in
 * its own process group, so the terminal's Ctrl-C reaches only the demo, which stops it with
 * SIGTERM (the embedded PostgreSQL then shuts down after larksync, not under it).
 *
 *  - Should the demo die without doing so (SIGKILL), the IPC channel closes and larksync stops
 *    itself the same way.
 *  - A stop asked for while larksync is still starting waits until it has started: server.ts
 *    installs its graceful shutdown only then, and a plain exit before that would leave the
 *    embedded PostgreSQL it started running.
 */
let started = false;
let stopAsked: NodeJS.Signals | undefined;
let signalled = false;
const onSignal = (signal: NodeJS.Signals) => {
  signalled = true;
  if (!started) stopAsked ??= signal;
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
process.on('disconnect', () => {
  if (signalled) return;
  if (started) process.kill(process.pid, 'SIGTERM');
  else stopAsked ??= 'SIGTERM';
});

// Resolves once larksync listens and its shutdown handler is installed (server.ts awaits both).
await import('../src/server.js');
started = true;
if (stopAsked) process.kill(process.pid, stopAsked);
