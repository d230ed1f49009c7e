/**
 * The bash completion script: one function, every word in it generated from the model. It
 * needs only bash itself (not the bash-completion package), runs nothing and evaluates nothing
 * of the command line, and may be sourced again (it only redefines its function).
 */
import { checkWord, type CompletionModel, type FlagSpec } from "./model.ts";

/** Every way to write a flag: --long, --no-long (on/off flags), -s. */
function spellings(flag: FlagSpec): string[] {
  return [`--${flag.long}`, ...(flag.negatable ? [`--no-${flag.long}`] : []), ...flag.short.map((s) => `-${s}`)].map(
    checkWord,
  );
}

/**
 * Spellings of the flags that take a value, as `command flag` case patterns, grouped by what the
 * value completes to.
 */
function valueCases(model: CompletionModel): string[] {
  const groups = new Map<string, string[]>();
  for (const command of model.commands) {
    for (const flag of command.flags) {
      const { value } = flag;
      if (value.kind === "none") continue;
      // A value is expected in every case; "any" has nothing to offer (a count, a duration, a URL).
      const body =
        value.kind === "choice"
          ? `valued=1 words='${value.choices.map(checkWord).join(" ")}' ;;`
          : value.kind === "file"
            ? "valued=1 files=1 ;;"
            : "valued=1 ;;";
      const patterns = groups.get(body) ?? [];
      for (const spelling of [`--${flag.long}`, ...flag.short.map((s) => `-${s}`)])
        patterns.push(`'${checkWord(command.name)} ${checkWord(spelling)}'`);
      groups.set(body, patterns);
    }
  }
  return [...groups].map(([body, patterns]) => `    ${patterns.join("|")})\n      ${body}`);
}

export function bashScript(model: CompletionModel, version: string): string {
  const fn = `_${model.program}_completion`;
  const commandCases = model.commands.map(
    (c) => `    ${checkWord(c.name)}) words='${[...c.flags.flatMap(spellings)].join(" ")}' ;;`,
  );
  const positionalCases = model.commands
    .filter((c) => c.positional.length > 0)
    .map((c) => `    ${checkWord(c.name)}) words='${c.positional.map(checkWord).join(" ")}' ;;`);
  return `# bash completion for ${model.program} ${version}, printed by \`${model.program} completion bash\`.
# Load it with: source <(${model.program} completion bash)   (e.g. in ~/.bashrc)
# It is generated from ${model.program}'s option table: print it again after upgrading.

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev="" flag="" prefix="" cmd="" words="" valued="" files=""
  COMPREPLY=()
  (( COMP_CWORD > 0 )) && prev=\${COMP_WORDS[COMP_CWORD-1]}
  (( COMP_CWORD > 1 )) && cmd=\${COMP_WORDS[1]}

  # The command itself, or ${model.program}'s own flags.
  if (( COMP_CWORD == 1 )); then
    if [[ $cur == -* ]]; then words='${model.rootFlags.flatMap(spellings).join(" ")}'
    else words='${model.commands.map((c) => checkWord(c.name)).join(" ")}'
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
  fi

  # The flag whose value is being typed: "--flag value", or "--flag=value", which bash splits
  # at "=" or not depending on COMP_WORDBREAKS.
  if [[ $cur == = ]]; then flag=$prev; cur=""
  elif [[ $prev == = ]] && (( COMP_CWORD > 2 )); then flag=\${COMP_WORDS[COMP_CWORD-2]}
  elif [[ $cur == --*=* ]]; then flag=\${cur%%=*}; prefix="$flag="; cur=\${cur#*=}
  elif [[ $prev == -* ]]; then flag=$prev
  fi
  if [[ -n $flag ]]; then
    case "$cmd $flag" in
${valueCases(model).join("\n")}
    esac
    if [[ -n $valued ]]; then
      if [[ -n $words ]]; then COMPREPLY=($(compgen -W "$words" -- "$cur"))
      elif [[ -n $files ]]; then
        # One file name a line, spaces kept.
        local IFS=$'\\n'
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      (( \${#COMPREPLY[@]} > 0 )) && [[ -n $prefix ]] && COMPREPLY=("\${COMPREPLY[@]/#/$prefix}")
      return 0
    fi
  fi

  if [[ $cur == -* ]]; then
    case "$cmd" in
${commandCases.join("\n")}
    esac
  else
    case "$cmd" in
${positionalCases.join("\n")}
    esac
  fi
  [[ -n $words ]] && COMPREPLY=($(compgen -W "$words" -- "$cur"))
  return 0
}

complete -F ${fn} ${model.program}
`;
}
