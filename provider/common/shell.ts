// The one way a value reaches a shell on a host: every word of every command bpfnet runs over
// SSH goes through shellQuote (or shellWords). Validation at preview keeps values sane; quoting
// keeps even a value that slipped past validation a single inert word.

/** Quotes a word for POSIX sh: safe characters stay bare, anything else is single-quoted. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Words joined into one command line, each quoted. */
export function shellWords(words: (string | number)[]): string {
  return words.map((w) => shellQuote(String(w))).join(" ");
}
