import { BodyTooLarge, readCapped } from '../http/read-capped.js';
import type { Metrics } from '../metrics/metrics.js';
import { LarkApiError, RATE_LIMIT_CODES } from '../lark/errors.js';
import { codeLabel } from '../lark/known-codes.js';
import { TenantNotActiveError, TenantNotFoundError } from '../tenants/tenant-errors.js';
import type { TenantTokens } from '../tokens/tokens.service.js';
import { LarkFileError } from './sink-errors.js';

/** Downloads a Drive file's bytes as the tenant (files are not stored in docs_content). */
export type LarkFileDownload = (tenantKey: string, fileToken: string) => Promise<{ bytes: Buffer; mime: string }>;

/** Largest file delivered (Dify takes 15 MB by default, RAGFlow 1 GiB). */
export const MAX_SINK_FILE_BYTES = 200 * 1024 * 1024;

const ENDPOINT = '/open-apis/drive/v1/files/:file_token/download';

async function readAll(res: Response, cap: number): Promise<Buffer> {
  try {
    return await readCapped(res, cap);
  } catch (err) {
    if (err instanceof BodyTooLarge) throw new LarkFileError(`the file is larger than ${cap} bytes`, true);
    throw err;
  }
}

/**
 * `GET /open-apis/drive/v1/files/:file_token/download` with the tenant's token (a rejected token
 * is minted again once, by TenantTokens). A JSON answer is Lark refusing; the bytes are the file.
 * Redirects are not followed.
 */
export function larkFileDownloader(forTenant: (tenantKey: string) => Promise<TenantTokens>, metrics: Metrics, maxBytes = MAX_SINK_FILE_BYTES): LarkFileDownload {
  return async (tenantKey, fileToken) => {
    try {
      const tokens = await forTenant(tenantKey);
      return await tokens.withToken(async (token, baseUrl) => {
        const stop = metrics.upstreamLatency.startTimer({ endpoint: ENDPOINT });
        let res: Response;
        try {
          res = await fetch(`${baseUrl}/open-apis/drive/v1/files/${encodeURIComponent(fileToken)}/download`, {
            headers: { authorization: `Bearer ${token}` },
            redirect: 'manual',
            signal: AbortSignal.timeout(120_000),
          });
        } catch (err) {
          stop();
          metrics.upstreamCalls.inc({ endpoint: ENDPOINT, code: 'transport_error' });
          throw new LarkFileError(`Lark could not be reached for the download (${(err as Error).name})`, false);
        }
        const type = res.headers.get('content-type') ?? 'application/octet-stream';
        if (type.includes('application/json')) {
          const text = (await readAll(res, 1024 * 1024)).toString('utf8');
          stop();
          let body: { code?: unknown; msg?: unknown } = {};
          try {
            body = JSON.parse(text) as typeof body;
          } catch {
            // not JSON after all
          }
          const code = typeof body.code === 'number' ? body.code : -1;
          metrics.upstreamCalls.inc({ endpoint: ENDPOINT, code: codeLabel(code) });
          throw new LarkApiError(ENDPOINT, code, typeof body.msg === 'string' ? body.msg.slice(0, 300) : '', res.status, res.headers.get('x-tt-logid') ?? undefined, undefined);
        }
        if (res.status !== 200) {
          await res.body?.cancel().catch(() => undefined);
          stop();
          metrics.upstreamCalls.inc({ endpoint: ENDPOINT, code: `http_${res.status}` });
          throw new LarkFileError(`Lark answered the download with HTTP ${res.status}`, res.status >= 300 && res.status < 500 && res.status !== 429);
        }
        const bytes = await readAll(res, maxBytes);
        stop();
        metrics.upstreamCalls.inc({ endpoint: ENDPOINT, code: '0' });
        return { bytes, mime: type.split(';')[0]!.trim() || 'application/octet-stream' };
      });
    } catch (err) {
      if (err instanceof LarkFileError) throw err;
      if (err instanceof LarkApiError) {
        const transient = RATE_LIMIT_CODES.has(err.code) || err.httpStatus >= 500 || err.isTokenInvalid;
        throw new LarkFileError(`Lark refused the download (code ${err.code}${err.larkMessage ? `: ${err.larkMessage}` : ''})`, !transient);
      }
      if (err instanceof TenantNotFoundError || err instanceof TenantNotActiveError) throw new LarkFileError(err.message, true);
      throw new LarkFileError(`the file could not be downloaded from Lark (${(err as Error).name})`, false);
    }
  };
}
