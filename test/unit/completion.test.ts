/**
 * Shell completion is read from the option table (completion/model.ts), not listed by hand:
 * every command, every flag with its short form, every fixed set of values is in the model and
 * in each shell's script. (The scripts are run in real shells in test/integration/completion.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import { checkWord, completionModel, shortDescription } from "../../src/completion/model.ts";
import { bashScript, fishScript, zshScript } from "../../src/completion/scripts.ts";
import { COMMAND_OPTIONS, COMMANDS, OPTIONS, type OptionDef, type OptionName } from "../../src/options.ts";

const model = completionModel();

describe("the completion model is the option table", () => {
  test("every command, with its options (and --help) in the table's order", () => {
    expect(model.commands.map((c) => c.name)).toEqual([...COMMANDS]);
    for (const command of model.commands)
      expect(command.flags.map((f) => f.long)).toEqual([...COMMAND_OPTIONS[command.name], "help"]);
  });

  test("short forms are the table's; values: on/off, a fixed set, a file, or anything", () => {
    for (const command of model.commands) {
      for (const flag of command.flags.filter((f) => f.long !== "help")) {
        const option: OptionDef<unknown> = OPTIONS[flag.long as OptionName];
        expect(flag.short).toEqual(option.short);
        const expected =
          option.kind === "switch"
            ? "none"
            : option.choices
              ? "choice"
              : option.valueHint === "file" || option.valueHint === "path"
                ? "file"
                : "any";
        expect(flag.value.kind, `${command.name} --${flag.long}`).toBe(expected);
        if (flag.value.kind === "choice") expect(flag.value.choices).toEqual(option.choices!);
        expect(flag.negatable).toBe(option.kind === "switch");
      }
    }
    // The fixed sets the issue names, at least.
    for (const name of ["log-level", "log-format", "queue-type", "reply-queue"] as const)
      expect(OPTIONS[name].choices, name).toBeDefined();
  });

  test("each script names every command and every flag", () => {
    for (const render of [bashScript, zshScript, fishScript]) {
      const script = render(model, "0.0.0-test");
      for (const command of model.commands) {
        expect(script).toContain(command.name);
        for (const flag of command.flags) {
          expect(script, `${render.name}: --${flag.long}`).toMatch(new RegExp(`(--|-l )${flag.long}\\b`));
          if (flag.value.kind === "choice") for (const value of flag.value.choices) expect(script).toContain(value);
        }
      }
    }
  });

  test("descriptions: the first clause, at most 80 characters", () => {
    expect(shortDescription("Request queue")).toBe("Request queue");
    expect(shortDescription("pretty: one line of text per entry; json: one JSON object per line")).toBe(
      "pretty: one line of text per entry",
    );
    expect(shortDescription("classic: durable (an existing queue, e.g. the tutorial's, is joined)")).toBe(
      "classic: durable (an existing queue, e.g. the tutorial's, is joined)",
    );
    expect(shortDescription("x".repeat(100))).toHaveLength(80);
  });

  test("a flag whose help explains each choice in turn is described by its choices, not the first one's text", () => {
    const flags = completionModel().commands.flatMap((c) => c.flags);
    const describedAs = (long: string) => new Set(flags.filter((f) => f.long === long).map((f) => f.description));
    expect(describedAs("queue-type")).toEqual(new Set(["classic or quorum"]));
    expect(describedAs("reply-queue")).toEqual(new Set(["direct or exclusive"]));
    expect(describedAs("log-format")).toEqual(new Set(["pretty or json"]));
    expect(describedAs("log-level")).toEqual(new Set(["Log level on stderr"]));
  });

  test("a word that would need quoting in a script is refused, not embedded", () => {
    for (const word of ["serve", "--log-level", "-w", "1.5"]) expect(checkWord(word)).toBe(word);
    for (const word of ["a b", "$(id)", "x'y", "", "`id`", "a;b"])
      expect(() => checkWord(word)).toThrow(/not a plain word/);
  });
});
