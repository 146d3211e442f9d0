import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LarkSimulator } from '../lark-simulator.js';
import { larkReply } from '../lark-reply.js';
import { CONSENT_PATH, consentPage, errorPage } from './page.js';
import { AuthorizePageError, oauthError, type AuthorizeQuery } from './user-auth.js';
import { avatarUrls } from './users.js';

export const OAUTH_PATHS = {
  /** Served on the accounts host upstream (auth.md §5.1); the simulator serves it on its one origin. */
  authorize: '/open-apis/authen/v1/authorize',
  consent: CONSENT_PATH,
  token: '/open-apis/authen/v2/oauth/token',
  userInfo: '/open-apis/authen/v1/user_info',
  isUserAdmin: '/open-apis/application/v3/is_user_admin',
} as const;

/**
 * The page's HTTP status on an error. Lark's is not documented (a human reads the page, no client
 * parses it); the simulator answers 400 so a test sees the failure without reading HTML.
 */
const PAGE_ERROR_STATUS = 400;

const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).type('text/html; charset=utf-8').send(body);

/** A query or form value as one string (the first when repeated). */
function one(v: unknown): string | undefined {
  if (Array.isArray(v)) return one(v[0]);
  return typeof v === 'string' ? v : undefined;
}

function basicAuth(req: FastifyRequest): { clientId: string; clientSecret: string } | 'malformed' | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return 'malformed';
  try {
    // RFC 6749 §2.3.1 form-encodes both parts before base64.
    return { clientId: decodeURIComponent(decoded.slice(0, colon)), clientSecret: decodeURIComponent(decoded.slice(colon + 1)) };
  } catch {
    return 'malformed';
  }
}

export function registerOAuthRoutes(app: FastifyInstance, sim: LarkSimulator): void {
  const auth = sim.oauth;

  // Form bodies: the consent forms, and the token endpoint (the official CLI and plugin post
  // application/x-www-form-urlencoded; the docs show JSON; both accepted, user-oauth.md §7).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.get<{ Querystring: Record<string, unknown> }>(OAUTH_PATHS.authorize, async (req, reply) => {
    const q = req.query;
    const query: AuthorizeQuery = {
      client_id: one(q.client_id),
      redirect_uri: one(q.redirect_uri),
      scope: one(q.scope),
      state: one(q.state),
      code_challenge: one(q.code_challenge),
      code_challenge_method: one(q.code_challenge_method),
    };
    try {
      const request = auth.validate(query);
      const candidates = auth.candidates(request.appId);
      // Pre-selection: `sim_user=<open_id>` (with `sim_tenant` when open ids repeat across
      // tenants), or UserAuth.preselect(). Not Lark parameters: Lark ignores unknown ones.
      const wanted = one(q.sim_user);
      const ref = wanted ? { openId: wanted, tenantKey: one(q.sim_tenant) } : auth.preselectedFor(request.appId);
      const preselected = ref ? candidates.find((u) => u.openId === ref.openId && (!ref.tenantKey || u.tenantKey === ref.tenantKey)) : undefined;
      if (ref && !preselected) throw new AuthorizePageError(20010, `user ${ref.openId} may not use this app`);
      const consentId = auth.openConsent(request);
      return html(reply, 200, consentPage({ app: sim.getApp(request.appId), request, consentId, users: candidates, preselected }));
    } catch (err) {
      if (err instanceof AuthorizePageError) return html(reply, PAGE_ERROR_STATUS, errorPage(err.code, err.message.replace(/^\d+: /, '')));
      throw err;
    }
  });

  app.post<{ Body: Record<string, unknown> | undefined }>(OAUTH_PATHS.consent, async (req, reply) => {
    const body = req.body && typeof req.body === 'object' ? req.body : {};
    const decision = one(body.decision) === 'deny' ? 'deny' : 'allow';
    const [tenantKey, openId] = (one(body.user) ?? '').split(' ');
    try {
      const location = auth.decide(one(body.consent) ?? '', decision, tenantKey && openId ? { tenantKey, openId } : undefined);
      return reply.code(302).header('location', location).type('text/html; charset=utf-8').send(`<a href="${location.replace(/"/g, '&quot;')}">continue</a>`);
    } catch (err) {
      if (err instanceof AuthorizePageError) return html(reply, PAGE_ERROR_STATUS, errorPage(err.code, err.message.replace(/^\d+: /, '')));
      throw err;
    }
  });

  app.post(
    OAUTH_PATHS.token,
    {
      // A body Fastify cannot parse (bad JSON, another content type) is Lark's "malformed request".
      errorHandler: (err: { statusCode?: number }, req, reply) => {
        const answer = (err.statusCode ?? 500) >= 500 ? oauthError(20050, 'internal server error') : auth.token('malformed', basicAuth(req));
        return larkReply(reply, answer.status, answer.body);
      },
    },
    async (req, reply) => {
      const raw = req.body;
      const body = raw === undefined || raw === null ? {} : typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : 'malformed';
      const answer = auth.token(body, basicAuth(req));
      return larkReply(reply, answer.status, answer.body);
    },
  );

  app.get(OAUTH_PATHS.userInfo, async (req, reply) => {
    const who = sim.authorizeUser(req, reply);
    if (!who) return reply;
    const u = who.user;
    const custom = sim.getApp(who.appId).kind === 'custom';
    return larkReply(reply, 200, {
      code: 0,
      msg: 'success',
      data: {
        name: u.name,
        en_name: u.enName,
        ...avatarUrls(u),
        open_id: u.openId,
        union_id: u.unionId,
        email: u.email,
        enterprise_email: u.enterpriseEmail,
        // user_id needs contact:user.employee_id:readonly, a custom-app-only scope (contact.md §1),
        // as the contact routes assume too.
        ...(custom ? { user_id: u.userId } : {}),
        ...(u.mobile ? { mobile: u.mobile } : {}),
        tenant_key: u.tenantKey,
        ...(u.employeeNo ? { employee_no: u.employeeNo } : {}),
      },
    });
  });

  app.get<{ Querystring: Record<string, unknown> }>(OAUTH_PATHS.isUserAdmin, async (req, reply) => {
    const who = sim.authorizeTenant(req, reply);
    if (!who) return reply;
    const openId = one(req.query.open_id);
    const employeeId = one(req.query.employee_id);
    if (!openId && !employeeId) return larkReply(reply, 400, { code: 10003, msg: 'invalid param: open_id or employee_id is required' });
    const admins = auth.users.admins(who.tenantKey);
    const subject = openId ?? auth.users.list(who.tenantKey).find((u) => u.userId === employeeId)?.openId;
    // Someone the tenant does not know is simply not an admin (the documented error for a foreign
    // id, if any, is not in the notes).
    return larkReply(reply, 200, { code: 0, msg: 'success', data: { is_app_admin: subject !== undefined && admins.has(subject) } });
  });
}
