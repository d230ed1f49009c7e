/**
 * The fish completion script: `complete` lines generated from the model, each guarded by which
 * command is on the line (the word after the program name, as bash and zsh read it).
 */
import { checkWord, type CompletionModel, type FlagSpec } from "./model.ts";

/** A fish single-quoted string. */
function quoted(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function flagLines(prefix: string, flag: FlagSpec): string[] {
  const shorts = flag.short.map((s) => ` -s ${checkWord(s)}`).join("");
  const description = ` -d ${quoted(flag.description)}`;
  const { value } = flag;
  // -x: takes a value, no file names; -r -F: takes a file name.
  const takes =
    value.kind === "none"
      ? ""
      : value.kind === "choice"
        ? ` -x -a ${quoted(value.choices.map(checkWord).join(" "))}`
        : value.kind === "file"
          ? " -r -F"
          : " -x";
  const lines = [`${prefix}${shorts} -l ${checkWord(flag.long)}${takes}${description}`];
  if (flag.negatable) lines.push(`${prefix} -l no-${checkWord(flag.long)} -d ${quoted(`Turn off --${flag.long}`)}`);
  return lines;
}

export function fishScript(model: CompletionModel, version: string): string {
  const program = checkWord(model.program);
  const needsCommand = `__${program}_needs_command`;
  const using = `__${program}_using_command`;
  const lines: string[] = [];
  for (const flag of model.rootFlags) lines.push(...flagLines(`complete -c ${program} -n ${needsCommand}`, flag));
  for (const command of model.commands)
    lines.push(`complete -c ${program} -n ${needsCommand} -a ${checkWord(command.name)}`);
  for (const command of model.commands) {
    const prefix = `complete -c ${program} -n '${using} ${checkWord(command.name)}'`;
    for (const flag of command.flags) lines.push(...flagLines(prefix, flag));
    if (command.positional.length > 0)
      lines.push(`${prefix} -a ${quoted(command.positional.map(checkWord).join(" "))}`);
  }
  return `# fish completion for ${program} ${version}, printed by \`${program} completion fish\`.
# Install: ${program} completion fish > ~/.config/fish/completions/${program}.fish
# It is generated from ${program}'s option table: print it again after upgrading.

function ${needsCommand}
    test (count (commandline -opc)) -eq 1
end

function ${using}
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"
end

# Sourcing again replaces the completions; no file names unless a flag takes one.
complete -c ${program} -e
complete -c ${program} -f
${lines.join("\n")}
`;
}
