// Minimal XML helpers. The store only writes a handful of fixed S3 documents and reads two small
// ones (CompleteMultipartUpload, LifecycleConfiguration), so a parser dependency is not worth it.

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
export const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&apos;',
  );
}

export function xmlUnescape(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_m, e: string) => {
    switch (e) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** `<Name>text</Name>` for each defined entry, in order; undefined values are left out. */
export function xmlElements(entries: ReadonlyArray<readonly [string, string | number | boolean | undefined]>): string {
  return entries
    .filter((e): e is readonly [string, string | number | boolean] => e[1] !== undefined)
    .map(([name, value]) => `<${name}>${xmlEscape(String(value))}</${name}>`)
    .join('');
}

/** Text of every `<tag>…</tag>` directly found in `xml` (no nesting of the same tag expected). */
export function xmlTexts(xml: string, tag: string): string[] {
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  return [...xml.matchAll(re)].map((m) => m[1] ?? '');
}
