/** Text quoted from the input reaches the terminal without its control characters (src/printable.ts). */
import { describe, expect, spyOn, test } from "bun:test";
import { FibrpcError } from "../../src/errors.ts";
import { printable, quote } from "../../src/printable.ts";
import { reportError } from "../../src/report.ts";

describe("printable", () => {
  test("C0 as JSON escapes them, DEL and C1 as \\u escapes; other text as it is", () => {
    expect(printable("a\nb\u001b[31m")).toBe("a\\nb\\u001b[31m");
    expect(printable("\u007f\u0080\u009b\u009f")).toBe("\\u007f\\u0080\\u009b\\u009f");
    expect(printable("30 € \u00a0ü")).toBe("30 € \u00a0ü");
  });

  test("quote: JSON-quoted, and what would not show escaped (no-break and other spaces, format characters)", () => {
    expect(quote("5\u00a06")).toBe('"5\\u00a06"');
    expect(quote("\ufeffz\u200b")).toBe('"\\ufeffz\\u200b"');
    expect(quote("a b\u2028")).toBe('"a b\\u2028"');
    expect(quote('q"\n€')).toBe('"q\\"\\n€"');
    // Beyond U+FFFF (a tag character): both UTF-16 units, as JSON writes it, not half of it.
    expect(quote("a\u{e0041}")).toBe('"a\\udb40\\udc41"');
  });

  test("escaping twice changes nothing more", () => {
    const once = printable("x\u0000\u009by");
    expect(printable(once)).toBe(once);
  });
});

describe("an error's line", () => {
  test("quotes the input with its control characters escaped, C1 included", () => {
    const written: string[] = [];
    const spy = spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const code = reportError(new FibrpcError("USAGE", 'invalid n "\u009bX\u001b": n must be a decimal integer'));
      expect(code).toBe(64);
    } finally {
      spy.mockRestore();
    }
    expect(written.join("")).toContain('invalid n "\\u009bX\\u001b"');
    expect(written.join("")).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });
});

test("quote escapes the control characters JSON leaves: DEL and C1 (U+009B is a terminal's CSI)", () => {
  expect(quote("a\u007fb\u0085c\u009b31m")).toBe('"a\\u007fb\\u0085c\\u009b31m"');
});
