/**
 * Reading a --help page back (for the unit tests of the renderer and the binary's tests): its
 * sections by title, and the OPTIONS section as { flag, short, hint, description } with each
 * description's wrapped lines joined again.
 */

/** Escape sequences (SGR) removed. */
export function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

/** The lines of section `title` (up to the next blank line that is followed by a title). */
export function sectionOf(page: string, title: string): string[] {
  const lines = stripAnsi(page).split("\n");
  const start = lines.indexOf(title);
  if (start === -1) return [];
  const out: string[] = [];
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (
      line === "" &&
      (lines[i + 1] === undefined || /^[A-Z][A-Z ]+$/.test(lines[i + 1]!) || !lines[i + 1]!.startsWith(" "))
    )
      break;
    out.push(line);
  }
  return out;
}

export interface OptionEntry {
  flag: string;
  short?: string;
  hint?: string;
  description: string;
}

/**
 * The OPTIONS section: a label at indent 2 ("-w, --workers <count>") or 6 ("--url <...>"),
 * then its description, on the same line after two spaces and/or on lines indented 8 or more.
 * Only for widths at which no label is cut (80 and wider).
 */
export function optionsOf(page: string): OptionEntry[] {
  const entries: OptionEntry[] = [];
  for (const line of sectionOf(page, "OPTIONS")) {
    const label = /^(?: {2}-([a-zA-Z]), | {6})--([a-z-]+)(?: <([^>]*)>)?(?: {2,}(.*))?$/.exec(line);
    if (label) {
      entries.push({ flag: label[2]!, short: label[1], hint: label[3], description: label[4] ?? "" });
      continue;
    }
    const more = /^ {8,}(\S.*)$/.exec(line);
    if (!more || entries.length === 0) throw new Error(`not a line of OPTIONS: ${JSON.stringify(line)}`);
    const last = entries[entries.length - 1]!;
    last.description = last.description === "" ? more[1]! : `${last.description} ${more[1]!}`;
  }
  return entries;
}
