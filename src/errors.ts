/**
 * Errors with stable codes (undici style). The CLI maps an IsleError to a one-line message and
 * exit code 2 (bad input); anything else is a bug and exits 1 with a stack.
 */
export type IsleErrorCode =
  | 'ERR_FILE_MISSING'
  | 'ERR_FILE_EXISTS'
  | 'ERR_PEM_INVALID'
  | 'ERR_KEY_MISMATCH'
  | 'ERR_CERT_EXPIRED'
  | 'ERR_CERT_NOT_CA'
  | 'ERR_CHAIN_INVALID'
  | 'ERR_CSR_INVALID'
  | 'ERR_IDENTITY'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_STATE'
  | 'ERR_USAGE';

export class IsleError extends Error {
  readonly code: IsleErrorCode;
  /** The file the error is about, when there is one; the message already names it. */
  readonly file: string | undefined;

  constructor(code: IsleErrorCode, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IsleError';
    this.code = code;
    this.file = options.file;
  }
}

export function isIsleError(e: unknown): e is IsleError {
  return e instanceof IsleError;
}
