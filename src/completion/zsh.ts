/**
 * The zsh completion script: an `_arguments` spec per command, generated from the model. It
 * works both autoloaded from $fpath (the `#compdef` line) and sourced after compinit.
 */
import { checkWord, type CompletionModel, type FlagSpec } from "./model.ts";

/** Text inside a single-quoted _arguments spec: brackets and colons escaped for _arguments, quotes for the shell. */
function specText(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/([[\]:])/g, "\\$1")
    .replace(/'/g, `'\\''`);
}

/** The _arguments specs of one flag (two for an on/off flag: --x and --no-x). */
function flagSpecs(flag: FlagSpec): string[] {
  const long = `--${checkWord(flag.long)}`;
  const shorts = flag.short.map((s) => `-${checkWord(s)}`);
  const description = `[${specText(flag.description)}]`;
  if (flag.value.kind === "none") {
    const negated = flag.negatable ? [`--no-${checkWord(flag.long)}`] : [];
    const all = [...shorts, long, ...negated];
    const exclusive = all.length > 1 ? `'(${all.join(" ")})'` : "";
    const spelled = (name: string) =>
      `${exclusive}'${name}${name.startsWith("--no-") ? `[${specText(`Turn off --${flag.long}`)}]` : description}'`;
    return all.map(spelled);
  }
  const value = flag.value;
  const action =
    value.kind === "choice" ? `(${value.choices.map(checkWord).join(" ")})` : value.kind === "file" ? "_files" : " ";
  const message = specText(value.kind === "any" ? value.hint : value.kind === "file" ? "file" : flag.long);
  const tail = `${description}:${message}:${action}`;
  // --long= takes "--long value" and "--long=value"; a short flag takes the next word.
  const names = [...shorts, `${long}=`];
  if (flag.repeatable) return names.map((name) => `'*${name}${tail}'`);
  const exclusive = `(${[...shorts, long].join(" ")})`;
  return names.length === 1 ? [`'${exclusive}${names[0]}${tail}'`] : [`'${exclusive}'{${names.join(",")}}'${tail}'`];
}

export function zshScript(model: CompletionModel, version: string): string {
  const program = checkWord(model.program);
  const fn = `_${program}`;
  const rootSpecs = model.rootFlags.map(
    (flag) =>
      `'(- : *)'{${[...flag.short.map((s) => `-${s}`), `--${flag.long}`].join(",")}}'[${specText(flag.description)}]'`,
  );
  const commandCases = model.commands.map((command) => {
    const specs = command.flags.flatMap(flagSpecs);
    if (command.positional.length > 0)
      specs.push(
        `'1:${command.name === "completion" ? "shell" : "value"}:(${command.positional.map(checkWord).join(" ")})'`,
      );
    return (
      `        ${checkWord(command.name)})\n          _arguments \\\n            ` +
      `${specs.join(" \\\n            ")} \\\n            && ret=0 ;;`
    );
  });
  return `#compdef ${program}
# zsh completion for ${program} ${version}, printed by \`${program} completion zsh\`.
# Install: ${program} completion zsh > "\${fpath[1]}/${fn}"   (then start a new shell)
#      or: source <(${program} completion zsh)   (after compinit, e.g. in ~/.zshrc)
# It is generated from ${program}'s option table: print it again after upgrading.

${fn}() {
  local curcontext="$curcontext" state line ret=1
  typeset -A opt_args
  _arguments -C \\
    ${rootSpecs.join(" \\\n    ")} \\
    '1: :->command' \\
    '*:: :->args' \\
    && ret=0
  case $state in
    command)
      local -a commands=(${model.commands.map((c) => checkWord(c.name)).join(" ")})
      _describe -t commands '${program} command' commands && ret=0 ;;
    args)
      curcontext="\${curcontext%:*:*}:${program}-$words[1]:"
      case $words[1] in
${commandCases.join("\n")}
      esac ;;
  esac
  return ret
}

# Autoloaded from $fpath, this file is the body of ${fn}: complete. Sourced: register.
if [[ $funcstack[1] == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${program}
fi
`;
}
