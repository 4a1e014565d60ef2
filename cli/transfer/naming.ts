/**
 * Never overwrite: a file that would land on an existing name gets the next free variant,
 * `output.csv` → `output (1).csv` → `output (2).csv`. Compound archive extensions stay whole
 * (`logs.tar.gz` → `logs (1).tar.gz`); dotfiles and extensionless names get the suffix at the end.
 */
const COMPOUND = /\.tar\.(gz|bz2|xz|zst)$/i;

export function splitExtension(name: string): [stem: string, ext: string] {
  const compound = COMPOUND.exec(name);
  if (compound && compound.index > 0) return [name.slice(0, compound.index), name.slice(compound.index)];
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return [name, ''];
  return [name.slice(0, dot), name.slice(dot)];
}

/** The n-th variant of a file name; variant(name, 0) is the name itself. */
export function variant(name: string, n: number): string {
  if (n === 0) return name;
  const [stem, ext] = splitExtension(name);
  return `${stem} (${n})${ext}`;
}

/** First variant of `name` for which `taken` is false. */
export function firstFree(name: string, taken: (candidate: string) => boolean): string {
  for (let n = 0; ; n++) {
    const candidate = variant(name, n);
    if (!taken(candidate)) return candidate;
  }
}
