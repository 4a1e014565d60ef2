/** Errors of presigned transfers against the object store (S3 API). */
import { NetworkError, errorCode } from '../api/http.js';

/** A failed PUT/GET against the object store. `retryable` feeds the retry policy. */
export class TransferError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/** Reads an S3 error answer's <Code> (SignatureDoesNotMatch, AccessDenied, ...). */
export async function s3ErrorCode(body: { text(): Promise<string> }): Promise<string | undefined> {
  try {
    return /<Code>([^<]+)<\/Code>/.exec(await body.text())?.[1];
  } catch {
    return undefined;
  }
}

export function transferFailure(what: string, status: number, code: string | undefined): TransferError {
  const retryable = status === 429 || status >= 500;
  const hint =
    status === 403
      ? 'The presigned URL was refused (expired or altered). Run the command again to get fresh URLs.'
      : retryable
        ? 'The object store is having trouble; try again shortly.'
        : undefined;
  return new TransferError(`${what} failed: the object store answered ${status}${code ? ` ${code}` : ''}`, status, retryable, hint);
}

export function storeUnreachable(what: string, url: string, err: unknown): NetworkError {
  const origin = new URL(url).origin;
  return new NetworkError(
    `${what} failed: cannot reach the object store at ${origin} (${errorCode(err) ?? (err as Error).message})`,
    'The object store must be reachable from this machine (with `rgrid dev` it runs on 127.0.0.1).',
    errorCode(err),
    { cause: err },
  );
}

