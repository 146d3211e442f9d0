/**
 * An error with a stable code that the REST API can show as-is: `{ error: { code, message } }`.
 * Messages say what to fix and never carry secrets.
 */
export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}
