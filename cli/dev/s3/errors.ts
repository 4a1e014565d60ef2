// S3 error responses. Every failure inside the store is an S3Error; the HTTP layer turns it into
// the XML body real S3 / MinIO send, so clients (aws4fetch callers, botocore, our CLI) see the same
// codes locally as in production.
import { xmlEscape } from './xml.js';

export class S3Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    /** Extra elements S3 adds to some errors (e.g. StringToSign on SignatureDoesNotMatch). */
    readonly fields: Readonly<Record<string, string>> = {},
    /** Extra response headers (e.g. Content-Range on InvalidRange). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

export function errorXml(err: S3Error, resource: string, requestId: string): string {
  const extra = Object.entries(err.fields)
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message>` +
    `${extra}<Resource>${xmlEscape(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`
  );
}

// The errors used in more than one place, with S3's own wording.
export const accessDenied = (message = 'Access Denied.', fields?: Record<string, string>) =>
  new S3Error('AccessDenied', message, 403, fields);
export const noSuchKey = () => new S3Error('NoSuchKey', 'The specified key does not exist.', 404);
export const noSuchUpload = () =>
  new S3Error(
    'NoSuchUpload',
    'The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    404,
  );
export const notImplemented = (what: string) =>
  new S3Error('NotImplemented', `${what} is not implemented by the RGrid dev store.`, 501);
export const malformedXml = () =>
  new S3Error(
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema.',
    400,
  );
