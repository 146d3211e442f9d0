import type { FastifyInstance } from 'fastify';

/**
 * Once `close()` has begun, answers carry `Connection: close`. Node's server.close() drops only
 * the keep-alive connections idle at that moment; a connection busy with an in-flight request
 * would stay open after its answer until keepAliveTimeout (72 s), holding close() and the
 * process's shutdown past any grace period. Closing it after the answer lets shutdown finish.
 */
export function closeConnectionsWhenClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Callback style: an async hook costs every answer a promise, on the event endpoint's hot path.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
}
