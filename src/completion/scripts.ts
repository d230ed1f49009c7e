/**
 * The completion scripts, bash, zsh and fish, from the model: static text, nothing runs on Tab. Their words
 * need no quoting (model.ts checks them); descriptions are quoted for the shell that shows them.
 */
import type { CompletionModel, Flag } from "./model.ts";

/**
 * bash: one function. It needs only bash itself (not the bash-completion package), runs nothing and evaluates
 * nothing of the command line, and may be sourced again (it only redefines its function).
 */
export function bashScript({ commands }: CompletionModel, version: string): string {
  // Each command's flags that take a value: the words they complete to, file names, or nothing to offer.
  const valueCases = commands.flatMap(({ name, flags }) =>
    flags.flatMap(({ spellings, value: { kind, words } }) => {
      const to = { none: undefined, choice: `words='${words}' `, file: "files=1 ", any: "" }[kind];
      return to === undefined ? [] : [`    ${spellings.map((s) => `'${name} ${s}'`).join("|")}) ${to};;`];
    }),
  );
  // An operand's words (completion's shell) are offered for the first word after the command only.
  const commandCases = commands.map(({ name, flags, operand }) => {
    const spelled = flags.flatMap((flag) => flag.spellings).join(" ");
    const operands = operand ? `; (( COMP_CWORD == 2 )) && operands='${operand.words}'` : "";
    return `      ${name}) flags='${spelled}'${operands} ;;`;
  });
  const names = commands.map((c) => c.name).join(" ");
  return `# bash completion for fibrpc ${version}, printed by \`fibrpc completion bash\`.
# Load it with: source <(fibrpc completion bash)   (e.g. in ~/.bashrc)
# It is generated from fibrpc's option table: print it again after upgrading.

_fibrpc_completion() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev="" cmd="" flag="" prefix="" flags="" operands="" words="" files=""
  (( COMP_CWORD > 0 )) && prev=\${COMP_WORDS[COMP_CWORD-1]}
  (( COMP_CWORD > 1 )) && cmd=\${COMP_WORDS[1]}

  # Before a command: fibrpc's own flags, or the command. After: the flag whose value is being typed,
  # "--flag value" or "--flag=value", which bash splits at "=" or not depending on COMP_WORDBREAKS.
  if (( COMP_CWORD == 1 )); then flags='--help -h --version -v' operands='${names}'
  elif [[ $cur == = ]]; then flag=$prev; cur=""
  elif [[ $prev == = ]] && (( COMP_CWORD > 2 )); then flag=\${COMP_WORDS[COMP_CWORD-2]}
  elif [[ $cur == --*=* ]]; then flag=\${cur%%=*}; prefix="$flag="; cur=\${cur#*=}
  elif [[ $prev == -* ]]; then flag=$prev
  fi
  # A flag's value: one of a set, a file name, or nothing to offer (a count, a duration, a URL).
  # Anything else: the command's flags, or its other words.
  case "$cmd $flag" in
${valueCases.join("\n")}
    *)
      prefix=""
      case "$cmd" in
${commandCases.join("\n")}
      help) (( COMP_CWORD == 2 )) && operands='${names}' ;;
      esac
      if [[ $cur == -* ]]; then words=$flags; else words=$operands; fi ;;
  esac
  if [[ -n $files ]]; then
    # One file name a line, spaces kept.
    local IFS=$'\\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  else COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
  (( \${#COMPREPLY[@]} > 0 )) && [[ -n $prefix ]] && COMPREPLY=("\${COMPREPLY[@]/#/$prefix}")
  return 0
}

complete -F _fibrpc_completion fibrpc
`;
}

/** Text inside a single-quoted _arguments spec: brackets and colons escaped for _arguments, quotes for the shell. */
const specText = (text: string) => text.replace(/[\\[\]:]/g, "\\$&").replace(/'/g, `'\\''`);

/** The _arguments specs of a flag, one per spelling, each excluding the others (--url: repeatable). */
function zshSpecs({ long, spellings, description, value: { kind, words, hint }, repeatable }: Flag): string[] {
  const takes = { none: "", choice: `:${long}:(${words})`, file: ":file:_files", any: `:${specText(hint)}: ` }[kind];
  return spellings.map((name) => {
    const about = specText(name === `--no-${long}` ? `Turn off --${long}` : description);
    // --long= takes "--long value" and "--long=value"; a short flag takes the next word.
    const spelled = takes && name === `--${long}` ? `${name}=` : name;
    return `'${repeatable ? "*" : `(${spellings.join(" ")})`}${spelled}[${about}]${takes}'`;
  });
}

/** zsh: an `_arguments` spec per command. It works autoloaded from $fpath (`#compdef`) and sourced after compinit. */
export function zshScript({ commands }: CompletionModel, version: string): string {
  const cases = commands.map(({ name, flags, operand, operands: free }) => {
    // Operands that complete to nothing (call's n) are declared all the same: without a spec for them,
    // _arguments offers nothing after the first (`call 5 --js`).
    const operands = operand ? [`'1:${operand.name}:(${operand.words})'`] : free ? [`'*:${free}: '`] : [];
    const lines = [...flags.flatMap(zshSpecs), ...operands, "&& ret=0 ;;"].map((line) => `            ${line}`);
    return `        ${name})\n          _arguments \\\n${lines.join(" \\\n")}`;
  });
  return `#compdef fibrpc
# zsh completion for fibrpc ${version}, printed by \`fibrpc completion zsh\`.
# Install: fibrpc completion zsh > "\${fpath[1]}/_fibrpc"   (then start a new shell)
#      or: source <(fibrpc completion zsh)   (after compinit, e.g. in ~/.zshrc)
# It is generated from fibrpc's option table: print it again after upgrading.

_fibrpc() {
  local curcontext="$curcontext" state line ret=1
  typeset -A opt_args
  _arguments -C \\
    '(- : *)'{-h,--help}'[Show help]' \\
    '(- : *)'{-v,--version}'[Show the version]' \\
    '1: :->command' \\
    '*:: :->args' \\
    && ret=0
  case $state in
    command)
      local -a commands=(${commands.map((c) => c.name).join(" ")})
      _describe -t commands 'fibrpc command' commands && ret=0 ;;
    args)
      curcontext="\${curcontext%:*:*}:fibrpc-$words[1]:"
      case $words[1] in
${cases.join("\n")}
        help)
          _arguments '1:command:(${commands.map((c) => c.name).join(" ")})' && ret=0 ;;
      esac ;;
  esac
  return ret
}

# Autoloaded from $fpath, this file is the body of _fibrpc: complete. Sourced: register.
if [[ $funcstack[1] == _fibrpc ]]; then
  _fibrpc "$@"
else
  compdef _fibrpc fibrpc
fi
`;
}

/** A fish single-quoted string. */
const quoted = (text: string) => `'${text.replace(/[\\']/g, "\\$&")}'`;

/** fish: `complete` lines, each guarded by the command on the line (the word after fibrpc, as bash and zsh read it). */
export function fishScript({ commands }: CompletionModel, version: string): string {
  const lines = commands.flatMap(({ name, flags, operand }) => {
    const when = `complete -c fibrpc -n '__fibrpc_using_command ${name}'`;
    const flagLines = flags.flatMap(({ long, short, description, value: { kind, words }, negatable }) => {
      // -x: takes a value, no file names; -r -F: takes a file name.
      const takes = { none: "", choice: ` -x -a '${words}'`, file: " -r -F", any: " -x" }[kind];
      const line = `${when}${short ? ` -s ${short}` : ""} -l ${long}${takes} -d ${quoted(description)}`;
      return negatable ? [line, `${when} -l no-${long} -d ${quoted(`Turn off --${long}`)}`] : [line];
    });
    const first = `'__fibrpc_using_command ${name}; and __fibrpc_first_operand'`;
    const operandLine = `complete -c fibrpc -n ${first} -a '${operand?.words}'`;
    return [...flagLines, ...(operand ? [operandLine] : [])];
  });
  const names = commands.map((c) => c.name).join(" ");
  return `# fish completion for fibrpc ${version}, printed by \`fibrpc completion fish\`.
# Install: fibrpc completion fish > ~/.config/fish/completions/fibrpc.fish
# It is generated from fibrpc's option table: print it again after upgrading.

function __fibrpc_needs_command
    test (count (commandline -opc)) -eq 1
end

function __fibrpc_using_command
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"
end

function __fibrpc_first_operand
    test (count (commandline -opc)) -eq 2
end

# Sourcing again replaces the completions; no file names unless a flag takes one.
complete -c fibrpc -e
complete -c fibrpc -f
complete -c fibrpc -n __fibrpc_needs_command -s h -l help -d 'Show help'
complete -c fibrpc -n __fibrpc_needs_command -s v -l version -d 'Show the version'
${commands.map((c) => `complete -c fibrpc -n __fibrpc_needs_command -a ${c.name}`).join("\n")}
${lines.join("\n")}
complete -c fibrpc -n '__fibrpc_using_command help; and __fibrpc_first_operand' -a '${names}'
`;
}
