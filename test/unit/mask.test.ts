/**
 * mask.ts: the regex for URLs never parsed, and a Masker built from parsed URLs (every form of a
 * password, anywhere in a line).
 */
import { describe, expect, test } from "bun:test";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { Masker, maskSecrets } from "../../src/mask.ts";

describe("URLs never parsed: the regex", () => {
  const cases: [string, string][] = [
    ["amqp://guest:guest@127.0.0.1:5672", "amqp://guest:***@127.0.0.1:5672"],
    ["amqps://u:p%40ss@host/vh", "amqps://u:***@host/vh"],
    ["connect amqp://a:b@h:1 failed; amqp://c:d@h:2", "connect amqp://a:***@h:1 failed; amqp://c:***@h:2"],
    ["amqp://h:5672", "amqp://h:5672"],
    ["amqp://u:pa/ss?w#rd@h:5672/", "amqp://u:***@h:5672/"],
    // An unescaped "@" in the password: masked up to the last "@", not the first.
    ["at amqp://u:p@ss@h:5672 now", "at amqp://u:***@h:5672 now"],
    ["amqp://a:p,w@h1,amqp://c:d@h2", "amqp://a:***@h1,amqp://c:***@h2"],
    ["no url here", "no url here"],
  ];
  for (const [input, output] of cases) test(input, () => expect(maskSecrets(input)).toBe(output));
});

describe("parsed URLs: every form of the password, anywhere", () => {
  const text = "amqp://u:p%C3%A4%20ss%40%2C%23%25%3Aw@h:5672/v";
  const url = parseBrokerUrl(text);
  const masker = new Masker([url]);
  const password = "pä ss@,#%:w";
  const cases: [string, string][] = [
    [`connecting to ${text} now`, "connecting to amqp://u:***@h:5672/v now"],
    [`decoded ${password} here`, "decoded *** here"],
    [`as written p%C3%A4%20ss%40%2C%23%25%3Aw`, "as written ***"],
    [`encoded ${encodeURIComponent(password)}`, "encoded ***"],
    [`lower-case escapes ${encodeURIComponent(password).toLowerCase().replace("p", "p")}`, "lower-case escapes ***"],
    [JSON.stringify({ message: `x ${password} y` }), '{"message":"x *** y"}'],
  ];
  for (const [input, output] of cases) test(input, () => expect(masker.mask(input)).toBe(output));

  test("a space in the password: the URL as given is replaced whole", () => {
    const spaced = "amqp://u:pa ss@h";
    expect(new Masker([parseBrokerUrl(spaced)]).mask(`at ${spaced}/`)).toBe("at amqp://u:***@h:5672/");
  });

  test("short passwords and guest are not masked on their own (the URL still is)", () => {
    const masker = new Masker([parseBrokerUrl("amqp://u:abc@h"), parseBrokerUrl("amqp://guest:guest@h")]);
    expect(masker.mask("abc guest")).toBe("abc guest");
    expect(masker.mask("amqp://u:abc@h")).toBe("amqp://u:***@h:5672");
    expect(masker.mask("amqp://guest:guest@h")).toBe("amqp://guest:***@h:5672");
  });
});

test("a URL without a password is left as it is, even where its display form already shows it", () => {
  const masker = new Masker([parseBrokerUrl("amqp://127.0.0.2"), parseBrokerUrl("amqp://u@h/v")]);
  const line = "cannot reach the broker at amqp://127.0.0.2:5672 (or amqp://u@h:5672/v), given as amqp://127.0.0.2";
  expect(masker.mask(line)).toBe(line);
});

test("a Masker masks only its own URLs' passwords on their own; every one masks URLs by shape", () => {
  const mine = new Masker([parseBrokerUrl("amqp://u:my-secret@h")]);
  const other = new Masker([parseBrokerUrl("amqp://u:their-secret@h")]);
  expect(mine.mask("my-secret their-secret")).toBe("*** their-secret");
  expect(other.mask("my-secret their-secret")).toBe("my-secret ***");
  expect(new Masker().mask("at amqp://a:b@h:1")).toBe("at amqp://a:***@h:1");
});
