import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../src/plugins/error-handler.js';
import { TenantNotActiveError, TenantNotFoundError } from '../../src/tenants/tenant-errors.js';

describe('domain errors carry no HTTP status; the error handler gives them one', () => {
  it('answers TenantNotFoundError with 404 tenant_not_found and TenantNotActiveError with 409 tenant_not_active', async () => {
    const app = Fastify({ logger: false });
    installErrorHandling(app);
    app.get('/missing', async () => {
      throw new TenantNotFoundError('tk-x');
    });
    app.get('/inactive', async () => {
      throw new TenantNotActiveError('tk-y', 'has uninstalled the app');
    });
    await app.ready();
    try {
      const missing = await app.inject({ method: 'GET', url: '/missing' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toEqual({ error: { code: 'tenant_not_found', message: 'tenant tk-x is not known' } });
      const inactive = await app.inject({ method: 'GET', url: '/inactive' });
      expect(inactive.statusCode).toBe(409);
      expect(inactive.json()).toEqual({ error: { code: 'tenant_not_active', message: 'tenant tk-y has uninstalled the app' } });
    } finally {
      await app.close();
    }
  });
});
