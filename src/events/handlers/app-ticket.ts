import { str, type EventHandler } from './types.js';

export const handleAppTicket: EventHandler = async (event, ctx) => {
  const appId = str(event.app_id) ?? ctx.appId;
  const ticket = str(event.app_ticket);
  if (!appId || !ticket) return 'ignored';
  const saved = await ctx.services.tickets.save(appId, ticket, ctx.pushedAt, ctx.eventId);
  return saved ? 'processed' : 'ignored';
};
