/**
 * A text in slices of at most `size` UTF-16 units, in order, never cutting a surrogate pair: each
 * slice is well-formed where the text is, so slices encode (UTF-8, JSON) to exactly the pieces of
 * the whole text's encoding. For big texts that must not be encoded whole (a 10 MB page: hashing,
 * appending to a row in parts). A text within `size` is given as it is.
 */
export function* textChunks(text: string, size: number): Generator<string> {
  if (text.length <= size) {
    yield text;
    return;
  }
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + size);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1;
    yield text.slice(at, end);
    at = end;
  }
}
