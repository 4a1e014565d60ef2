/**
 * requirements.txt: validation and normalization.
 *
 * Only requirement specifiers and comments are allowed. Anything that changes where code comes
 * from (index options, find-links, editable installs, includes, URLs, VCS references, local
 * paths) is refused: package sources are the runner operator's configuration, never the user's.
 */

export interface RequirementLine {
  /** 1-based line number in the file. */
  line: number;
  /** PEP 503-normalized project name. */
  name: string;
  /** The normalized specifier text (name, extras, version and markers). */
  normalized: string;
}

export interface RequirementProblem {
  line: number;
  text: string;
  reason: string;
}

export type ParsedRequirements =
  | { ok: true; requirements: RequirementLine[] }
  | { ok: false; problems: RequirementProblem[] };

/** PEP 503: lowercase, runs of -, _ and . become a single -. */
export function normalizeProjectName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

// name [extras] (version specifiers)? (; markers)?
const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const EXTRAS = `\\[\\s*(?:${NAME}(?:\\s*,\\s*${NAME})*)?\\s*\\]`;
const VERSION_OP = '(?:===|~=|==|!=|<=|>=|<|>)';
const VERSION = '[A-Za-z0-9.*+!_-]+';
const SPEC = `${VERSION_OP}\\s*${VERSION}`;
const SPECS = `\\(?\\s*${SPEC}(?:\\s*,\\s*${SPEC})*\\s*\\)?`;
const REQUIREMENT = new RegExp(`^(${NAME})\\s*(${EXTRAS})?\\s*(${SPECS})?\\s*(?:;\\s*(.+))?$`);
const MARKER = /^[A-Za-z0-9_.'"<>=!~ ()-]+$/;

function stripComment(raw: string): string {
  // A comment starts at '#' at line start or after whitespace (pip's rule).
  const m = /(^|\s)#/.exec(raw);
  return (m ? raw.slice(0, m.index) : raw).trim();
}

function refusal(text: string): string | undefined {
  if (/^-/.test(text)) {
    const opt = text.split(/[\s=]/)[0];
    return `option ${opt} is not allowed: package sources and includes are set by the runner operator`;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || /@\s*[a-z][a-z0-9+.-]*:/i.test(text) || /^(git|hg|svn|bzr)\+/i.test(text)) {
    return 'URLs and VCS references are not allowed: name a package and version instead';
  }
  if (/^[./~]/.test(text) || text.includes('/') || text.includes('\\') || /\.(whl|tar\.gz|zip)$/i.test(text)) {
    return 'local paths and archive files are not allowed: name a package and version instead';
  }
  return undefined;
}

export function parseRequirements(text: string): ParsedRequirements {
  const requirements: RequirementLine[] = [];
  const problems: RequirementProblem[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trimEnd().endsWith('\\')) {
      problems.push({ line, text: raw.trim(), reason: 'line continuations are not supported: put each requirement on one line' });
      return;
    }
    const body = stripComment(raw);
    if (!body) return;
    const refused = refusal(body);
    if (refused) {
      problems.push({ line, text: raw.trim(), reason: refused });
      return;
    }
    const m = REQUIREMENT.exec(body);
    const markers = m?.[4];
    if (!m || (markers !== undefined && !MARKER.test(markers))) {
      problems.push({ line, text: raw.trim(), reason: 'not a valid requirement specifier (expected e.g. "numpy==1.26.4" or "pandas>=2")' });
      return;
    }
    const name = normalizeProjectName(m[1]!);
    const extras = m[2] ? '[' + m[2].slice(1, -1).split(',').map((e) => normalizeProjectName(e.trim())).filter(Boolean).sort().join(',') + ']' : '';
    const specs = m[3] ? m[3].replace(/[()\s]/g, '').split(',').sort().join(',') : '';
    const marker = markers ? ';' + markers.trim().replace(/\s+/g, ' ') : '';
    requirements.push({ line, name, normalized: `${name}${extras}${specs}${marker}` });
  });
  return problems.length ? { ok: false, problems } : { ok: true, requirements };
}

/**
 * The canonical text the env key hashes: comments and blank lines dropped, whitespace trimmed,
 * names normalized, lines sorted. Reordering or reformatting alone never changes the key.
 * Invalid input normalizes to its trimmed non-comment lines so that the function is total; callers
 * validate with parseRequirements first.
 */
export function normalizeRequirements(text: string): string {
  const parsed = parseRequirements(text);
  const lines = parsed.ok
    ? parsed.requirements.map((r) => r.normalized)
    : text.split(/\r?\n/).map(stripComment).filter(Boolean);
  return [...new Set(lines)].sort().join('\n');
}

export function formatRequirementProblems(problems: RequirementProblem[]): string {
  return problems.map((p) => `line ${p.line}: ${p.text}\n  ${p.reason}`).join('\n');
}
