import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { admitCall, larkReply, ok, type DataApiContext } from '../support.js';
import type { BitableTenant } from './seed.js';
import { randomAlnum, type SimMedia } from './values.js';

/**
 * Drive media upload into a Base, for attachment cells: `POST /open-apis/drive/v1/medias/upload_all`
 * (multipart/form-data: file_name, parent_type, parent_node, size, optional checksum and extra,
 * file). bitable.md §3 says attachments take `[{file_token}]` from a media upload into **this**
 * Base; the shared notes say nothing more about the upload, so its limits and codes below are those
 * of the upload_all page of the Feishu docs (2025-02-25): files up to 20 MB (20,971,520 bytes;
 * larger ones use the chunked upload, not simulated), 5 calls/s, and
 * - 1061002 (HTTP 400) params error: a missing or malformed form field, an unknown parent_type;
 * - 1061008 (HTTP 400) invalid file name: empty or longer than 250 characters;
 * - 1061043 (HTTP 400) file size beyond limit: `size` or the file over the limit;
 * - 1062009 (HTTP 400) the file's actual size differs from `size`;
 * - 1061044 (HTTP 400) parent node not exist: parent_node is no Base of the caller's tenant, or a
 *   parent_type for another kind of document (the simulator has no docs or sheets to upload to);
 * - 1061004 (HTTP 403) forbidden: a Base table the caller may not edit (`writeDenied`) or read.
 * Answer: `data.file_token` (`boxcn` + 22 letters). The token is usable in that Base only.
 */

export const UPLOAD_ALL_PATH = '/open-apis/drive/v1/medias/upload_all';

const PARENT_TYPES: ReadonlySet<string> = new Set([
  'doc_image',
  'docx_image',
  'sheet_image',
  'doc_file',
  'docx_file',
  'sheet_file',
  'vc_virtual_background',
  'bitable_image',
  'bitable_file',
  'moments',
  'ccm_import_open',
]);

const MIME: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  pdf: 'application/pdf',
  txt: 'text/plain',
  csv: 'text/csv',
  json: 'application/json',
  zip: 'application/zip',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
};

/** The MIME type a cell shows: the part's own unless generic, else from the file name's extension. */
function mimeOf(fileName: string, partType: string | undefined): string {
  if (partType && partType !== 'application/octet-stream') return partType;
  const ext = fileName.includes('.') ? fileName.slice(fileName.lastIndexOf('.') + 1).toLowerCase() : '';
  return MIME[ext] ?? 'application/octet-stream';
}

export function registerMediaRoutes(
  app: FastifyInstance,
  ctx: DataApiContext,
  tenant: (tenantKey: string) => BitableTenant,
  maxBytes: () => number,
): void {
  const fail = (reply: FastifyReply, code: number, msg: string, status = 400) => larkReply(reply, status, { code, msg });

  // Encapsulated: the multipart parser serves this route only.
  void app.register(async (scope) => {
    await scope.register(multipart, { limits: { fields: 20, files: 1, fieldSize: 64 * 1024 } });

    scope.post(UPLOAD_ALL_PATH, async (req, reply) => {
      const who = admitCall(ctx, req, reply, 'drive.medias.upload_all', { perSecond: 5 });
      if (!who) return reply;
      if (!req.isMultipart()) return fail(reply, 1061002, 'params error: the body must be multipart/form-data');
      const limit = maxBytes();
      const fields: Record<string, string> = {};
      let file: { bytes: Buffer; mimetype: string } | undefined;
      let tooLarge = false;
      try {
        // One byte over the limit is enough to know the file is too large.
        for await (const part of req.parts({ limits: { fileSize: limit + 1 } })) {
          if (part.type === 'file') {
            if (part.fieldname !== 'file' || file) {
              await part.toBuffer();
              continue;
            }
            const bytes = await part.toBuffer();
            if (part.file.truncated) tooLarge = true;
            file = { bytes, mimetype: part.mimetype };
          } else if (typeof part.value === 'string') {
            fields[part.fieldname] = part.value;
          }
        }
      } catch (err) {
        if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') tooLarge = true;
        else return fail(reply, 1061002, `params error: ${(err as Error).message}`);
      }

      const { file_name: fileName, parent_type: parentType, parent_node: parentNode, size: sizeText } = fields;
      if (parentType === undefined || parentNode === undefined || sizeText === undefined || fileName === undefined || (!file && !tooLarge)) {
        return fail(reply, 1061002, 'params error: file_name, parent_type, parent_node, size and file are required');
      }
      if (fileName.trim() === '' || fileName.length > 250) return fail(reply, 1061008, 'invalid file name.');
      if (!PARENT_TYPES.has(parentType)) return fail(reply, 1061002, `params error: unknown parent_type ${parentType}`);
      const size = Number(sizeText);
      if (!/^\d+$/.test(sizeText) || !Number.isSafeInteger(size)) return fail(reply, 1061002, 'params error: size must be a number of bytes');
      if (size > limit || tooLarge) return fail(reply, 1061043, 'file size beyond limit.');
      if (!file || file.bytes.length !== size) {
        return fail(reply, 1062009, 'the actual size is inconsistent with the parameter declaration size.');
      }

      const data = tenant(who.tenantKey);
      const base = data.bases.get(parentNode);
      if (!base || (parentType !== 'bitable_image' && parentType !== 'bitable_file')) return fail(reply, 1061044, 'parent node not exist.');
      const tables = [...base.tables.values()];
      const userMay = (readers: Set<string> | undefined) => !readers || (who.user !== undefined && readers.has(who.user.openId));
      if (tables.length > 0 && tables.every((t) => t.denied || t.writeDenied || !userMay(t.readers))) return fail(reply, 1061004, 'forbidden.', 403);

      const media: SimMedia = {
        file_token: `boxcn${randomAlnum(22)}`,
        appToken: parentNode,
        name: fileName,
        type: mimeOf(fileName, file.mimetype),
        size,
        parentType,
        uploadedAt: ctx.sim.now(),
      };
      data.media.set(media.file_token, media);
      data.requests.push({ api: 'upload', appToken: parentNode, tableId: '', query: {}, body: { ...fields }, at: Date.now() });
      return ok(reply, { file_token: media.file_token });
    });
  });
}
