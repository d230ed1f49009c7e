/**
 * mask.ts: the regex for URLs never parsed, and masking by parsed URLs (every form of a
 * password, anywhere in a line).
 */
import { describe, expect, test } from "bun:test";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { maskSecrets, registerBrokerUrl } from "../../src/mask.ts";

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
  registerBrokerUrl(url);
  const password = "pä ss@,#%:w";
  const cases: [string, string][] = [
    [`connecting to ${text} now`, "connecting to amqp://u:***@h:5672/v now"],
    [`decoded ${password} here`, "decoded *** here"],
    [`as written p%C3%A4%20ss%40%2C%23%25%3Aw`, "as written ***"],
    [`encoded ${encodeURIComponent(password)}`, "encoded ***"],
    [`lower-case escapes ${encodeURIComponent(password).toLowerCase().replace("p", "p")}`, "lower-case escapes ***"],
    [JSON.stringify({ message: `x ${password} y` }), '{"message":"x *** y"}'],
  ];
  for (const [input, output] of cases) test(input, () => expect(maskSecrets(input)).toBe(output));

  test("a space in the password: the URL as given is replaced whole", () => {
    const spaced = "amqp://u:pa ss@h";
    registerBrokerUrl(parseBrokerUrl(spaced));
    expect(maskSecrets(`at ${spaced}/`)).toBe("at amqp://u:***@h:5672/");
  });

  test("short passwords and guest are not masked on their own (the URL still is)", () => {
    registerBrokerUrl(parseBrokerUrl("amqp://u:abc@h"));
    registerBrokerUrl(parseBrokerUrl("amqp://guest:guest@h"));
    expect(maskSecrets("abc guest")).toBe("abc guest");
    expect(maskSecrets("amqp://u:abc@h")).toBe("amqp://u:***@h:5672");
    expect(maskSecrets("amqp://guest:guest@h")).toBe("amqp://guest:***@h:5672");
  });
});
