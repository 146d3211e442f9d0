/**
 * Event-ingest baseline: the official SDK's EventDispatcher behind its `adaptDefault` on a plain
 * node:http server, as the SDK's README shows it. It verifies and decrypts, runs a no-op handler
 * per event type, and stores nothing. Env: APP_ID, VERIFICATION_TOKEN, ENCRYPT_KEY.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as lark from '@larksuiteoapi/node-sdk';
import { serveParent } from './child-ipc.js';

const dispatcher = new lark.EventDispatcher({
  encryptKey: process.env.ENCRYPT_KEY,
  verificationToken: process.env.VERIFICATION_TOKEN,
  loggerLevel: lark.LoggerLevel.error,
}).register({
  app_open: async () => undefined,
  app_status_change: async () => undefined,
  app_uninstalled: async () => undefined,
});

const server = http.createServer(lark.adaptDefault('/lark/events', dispatcher, { autoChallenge: true }));
server.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serveParent(
  { url: async () => `http://127.0.0.1:${(server.address() as AddressInfo).port}` },
  () => new Promise<void>((resolve) => server.close(() => resolve())),
);
