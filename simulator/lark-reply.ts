import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

type WithLarkCode = FastifyRequest & { larkCode?: number };

/** A log id, extra headers, and the Lark code noted for the simulator's call log. */
function stamp(reply: FastifyReply, code: number | undefined, headers: Record<string, string>): void {
  reply.header('x-tt-logid', `sim-${randomBytes(6).toString('hex')}`);
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  (reply.request as WithLarkCode).larkCode = code;
}

/** Answers in Lark's envelope, with a log id, and notes the Lark code for the simulator's call log. */
export function larkReply(reply: FastifyReply, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  stamp(reply, typeof body.code === 'number' ? body.code : undefined, headers);
  return reply.code(status).send(body);
}

/**
 * larkReply with the envelope already serialized (`text` is JSON.stringify(body)): for an answer
 * that must leave at a given moment (a write call's latency), serialized before that moment.
 */
export function larkReplyText(reply: FastifyReply, status: number, code: number, text: string) {
  stamp(reply, code, { 'content-type': 'application/json; charset=utf-8' });
  return reply.code(status).send(text);
}

/** The Lark code a request was answered with, if it went through larkReply. */
export const larkCodeOf = (req: FastifyRequest): number | undefined => (req as WithLarkCode).larkCode;
