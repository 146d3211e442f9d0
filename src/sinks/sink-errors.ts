/**
 * What can go wrong talking to a knowledge-base sink, by who has to act. Messages say what
 * happened and what to do; they never carry the API key, a request body or a document's text.
 */

/** The sink cannot be reached or is failing for now (network, 5xx, 429, its internal errors): retry with backoff. */
export class SinkUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkUnavailableError';
  }
}

/**
 * The sink refuses larksync itself (bad API key, unknown dataset, API access off, a redirect):
 * nothing will work until the sink's configuration is fixed. The delivery backs off and says so.
 */
export class SinkRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkRefusedError';
  }
}

/** The sink refuses this one document (type, size, name): it is marked failed; the others go on. */
export class SinkDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkDocumentError';
  }
}

/** A Lark file could not be downloaded: `permanent` when Lark refuses it (gone, forbidden), else retried. */
export class LarkFileError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'LarkFileError';
  }
}

/** The sink is busy with this document (indexing, a metadata operation): try it again shortly. */
export class SinkBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkBusyError';
  }
}
