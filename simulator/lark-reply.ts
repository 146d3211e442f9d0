import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

type WithLarkCode = FastifyRequest & { larkCode?: number };

/** Answers in Lark's envelope, with a log id, and notes the Lark code for the simulator's call log. */
export function larkReply(reply: FastifyReply, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  reply.header('x-tt-logid', `sim-${randomBytes(6).toString('hex')}`);
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  (reply.request as WithLarkCode).larkCode = typeof body.code === 'number' ? body.code : undefined;
  return reply.code(status).send(body);
}

/**
 * larkReply with the envelope already serialized (`text` is JSON.stringify(body)): for an answer
 * that must leave at a given moment (a write call's latency), serialized before that moment.
 */
export function larkReplyText(reply: FastifyReply, status: number, code: number, text: string) {
  reply.header('x-tt-logid', `sim-${randomBytes(6).toString('hex')}`);
  reply.header('content-type', 'application/json; charset=utf-8');
  (reply.request as WithLarkCode).larkCode = code;
  return reply.code(status).send(text);
}

/** The Lark code a request was answered with, if it went through larkReply. */
export const larkCodeOf = (req: FastifyRequest): number | undefined => (req as WithLarkCode).larkCode;
