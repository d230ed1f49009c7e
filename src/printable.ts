/**
 * Text from elsewhere, safe for one line on a terminal: control characters escaped, C0 as JSON writes
 * them (\n, \u001b), DEL and C1 (U+0080–U+009F: U+009B is a terminal's CSI) as \u007f…\u009f, which
 * JSON leaves as they are.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c < "\u007f" ? JSON.stringify(c).slice(1, -1) : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Input quoted in an error line: JSON-quoted, and what would not show escaped too (\u00a0 for a no-break space, \ufeff
 * for a byte-order mark, zero-width and other format characters): `"5\u00a06"` says why 5 6 is not an n. The control
 * characters JSON leaves (DEL, and C1 such as U+009B, a terminal's CSI) are escaped too: an error reply or a line
 * quoting a client's bytes must not drive the terminal that shows it.
 */
export function quote(text: string): string {
  return JSON.stringify(text).replace(
    /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu,
    // Each UTF-16 unit: a character beyond U+FFFF (a tag character) is two escapes, as JSON writes it.
    (c) => [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""),
  );
}
