/** A body past the caller's cap: the connection is dropped and nothing more is read. */
export class BodyTooLarge extends Error {}

/**
 * Reads a response body whole, giving up (and dropping the connection) once it passes `cap`
 * bytes: refused at once when Content-Length already says so, else counted while streaming.
 * Shared by every outbound HTTP client (Lark, sinks, Lark file downloads).
 */
export async function readCapped(res: Response, cap: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > cap) {
    await res.body?.cancel().catch(() => undefined);
    throw new BodyTooLarge();
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > cap) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}
