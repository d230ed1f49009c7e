/**
 * --help, rendered here rather than by citty: citty colours whenever a few variables are unset
 * (so `fibrpc call --help | less` showed escape codes) and never wraps (lines of ~250 columns).
 * What it prints comes from the tables: options from OPTIONS (src/options.ts), operands and
 * descriptions from the citty records, exit codes from EXIT_CODES (src/errors.ts); only the
 * examples are written here.
 */
import type { ArgsDef, CommandDef, Resolvable } from "citty";
import { EXIT_CODES } from "../errors.ts";
import { COMMANDS, helpOf, OPTIONS, optionOf, optionsOf, shortOf, takes } from "../options.ts";
import type { CommandName, OptionName } from "../options.ts";
import { writeResults } from "../output.ts";
import { version } from "../version.ts";

export type HelpStyle = { color: boolean; width: number };

/** Below this, help wraps at this width anyway: narrower, a description would get a word a line. */
export const MIN_WIDTH = 40;
/** Help never wraps wider, however wide the terminal (as clap's max_term_width): longer lines read badly. */
export const MAX_WIDTH = 100;

/**
 * Colour and width for help written to `out` (process.stdout) with environment `env`: colour
 * only on a terminal (not TERM=dumb) or with FORCE_COLOR, never with NO_COLOR (set, even empty);
 * the width from COLUMNS, else the terminal's, else 80, kept within MIN_WIDTH..MAX_WIDTH.
 */
export function helpStyle(out: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv): HelpStyle {
  const tty = out.isTTY === true;
  // Set and empty is on, as Node.js and supports-color read it.
  const force = env.FORCE_COLOR !== undefined && !["0", "false"].includes(env.FORCE_COLOR);
  const color = env.NO_COLOR === undefined && (force || (tty && env.TERM !== "dumb"));
  const columns = /^[1-9]\d*$/.test(env.COLUMNS ?? "") ? Number(env.COLUMNS) : tty && out.columns ? out.columns : 80;
  return { color, width: Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, columns)) };
}

/**
 * Each command's EXAMPLES ("fibrpc" is the root): what one does, printed as a comment above the
 * commands it runs. A command added to cli.ts gets its own here.
 */
export const EXAMPLES: Readonly<Record<string, readonly { what: string; run: readonly string[] }[]>> = {
  fibrpc: [
    {
      what: "Start a server with 3 workers, then ask it for fib(30) (prints 832040)",
      run: ["fibrpc serve -w 3 &", "fibrpc call 30"],
    },
    { what: "Load it for 10 s with 200 calls in flight", run: ["fibrpc bench -c 200 --duration 10s"] },
    { what: "Any option from the environment instead", run: ["FIBRPC_URL=amqps://mq.example.com fibrpc call 30"] },
    { what: "Every option of a command", run: ["fibrpc call --help"] },
  ],
  serve: [
    { what: "One worker per CPU, on the broker at 127.0.0.1:5672", run: ["fibrpc serve"] },
    { what: "4 workers; /metrics, /healthz and /readyz on port 9464", run: ["fibrpc serve -w 4 --http-port 9464"] },
    {
      what: "A quorum queue on a cluster, failing over between nodes",
      run: ["fibrpc serve --queue-type quorum --url amqp://rabbit1,amqp://rabbit2"],
    },
    { what: "Keep a status file for `fibrpc health`", run: ["fibrpc serve --status-file /tmp/fibrpc-status.json"] },
  ],
  call: [
    { what: "fib(30): prints 832040", run: ["fibrpc call 30"] },
    { what: "Four at once, printed in argument order", run: ["fibrpc call 0 1 2 100"] },
    { what: "JSON lines, giving up after 2 s", run: ["fibrpc call -j -t 2s 10"] },
    {
      what: "Wait for a server to come up, and retry twice after a timeout",
      run: ["fibrpc call --wait-for-server --retry 2 30"],
    },
    { what: "n from stdin, 100 in flight, results in input order", run: ["seq 1 1000 | fibrpc call -"] },
    {
      what: "A pipeline: the results go to queue results, for another program; exits once all are confirmed",
      run: ["seq 1 1000 | fibrpc call - --reply-to results --no-wait"],
    },
  ],
  bench: [
    { what: "10000 calls of fib(1), 100 in flight (the defaults)", run: ["fibrpc bench"] },
    { what: "50000 calls, 200 in flight, n drawn from 1000-2000", run: ["fibrpc bench -r 50000 -c 200 -n 1000-2000"] },
    { what: "Run for 30 s; the summary as JSON", run: ["fibrpc bench --duration 30s -j"] },
    {
      what: "Open loop: 2000 calls/s for 30 s whatever the server does, latency from each call's intended start",
      run: ["fibrpc bench --rate 2000 --duration 30s"],
    },
  ],
  health: [
    {
      what: "Is the local serve (started with this --status-file) healthy?",
      run: ["fibrpc health --status-file /tmp/fibrpc-status.json && echo ok"],
    },
    { what: "In the container image, which sets FIBRPC_STATUS_FILE", run: ["fibrpc health"] },
  ],
  completion: [
    { what: "bash: complete fibrpc in every new shell", run: ["echo 'source <(fibrpc completion bash)' >> ~/.bashrc"] },
    {
      what: "zsh: into the first folder of $fpath, then start a new shell",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's ${fpath[1]}, printed for the shell to expand
      run: ['fibrpc completion zsh > "${fpath[1]}/_fibrpc"'],
    },
    { what: "fish", run: ["fibrpc completion fish > ~/.config/fish/completions/fibrpc.fish"] },
  ],
};

/** `text` in lines of at most `width` columns: the first indented `first`, the others `rest`. */
export function wrap(text: string, width: number, first: number, rest = first): string[] {
  const lines: string[] = [];
  const indent = () => " ".repeat(lines.length === 0 ? first : rest);
  const room = () => Math.max(1, width - indent().length);
  let line = "";
  for (let word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && line.length + 1 + word.length <= room()) {
      line += ` ${word}`;
      continue;
    }
    if (line !== "") lines.push(indent() + line);
    // A word wider than a whole line (a long URL): cut after the last / @ : , | it has within
    // the line (else anywhere), so that no line exceeds the width.
    while (word.length > room()) {
      const at = Math.max(...[..."/@:,|"].map((c) => word.lastIndexOf(c, room() - 1)));
      const cut = at > 0 ? at + 1 : room();
      lines.push(indent() + word.slice(0, cut));
      word = word.slice(cut);
    }
    line = word;
  }
  return [...lines, indent() + line];
}

/**
 * A shell command in lines of at most `width` columns that still runs pasted: broken only between words
 * (spaces outside quotes), each line but the last ending in " \" and the next indented `rest`. A word too
 * wide for a line at `rest` starts nearer the margin (down to `first`); one too wide even there stays whole.
 */
export function wrapCommand(command: string, width: number, first: number, rest = first): string[] {
  const words = command.match(/(?:[^ '"]+|'[^']*'?|"[^"]*"?)+/g) ?? [];
  const lines: string[] = [];
  let line = " ".repeat(first);
  words.forEach((word, i) => {
    const tail = i === words.length - 1 ? 0 : 2; // room for " \" unless it is the last word
    if (line.trim() !== "" && line.length + 1 + word.length + tail > width) {
      lines.push(`${line} \\`);
      line = " ".repeat(Math.max(first, Math.min(rest, width - word.length - tail)));
    }
    line += line.trim() === "" ? word : ` ${word}`;
  });
  return [...lines, line];
}

const sgr = (color: boolean, open: number, close: number) => (text: string) =>
  color ? `\u001b[${open}m${text}\u001b[${close}m` : text;
/** `line` with its text (first to last non-space) in the labels' colour. */
const paintLabel = (line: string, color: boolean) => line.replace(/\S(.*\S)?/, sgr(color, 36, 39));

type Row = readonly [label: string, text: string];

/**
 * Two columns: labels, then their text with a hanging indent. A label too wide for the column
 * has its line to itself, its text starting below; on a narrow width every text does.
 */
function table(rows: readonly Row[], { width, color }: HelpStyle): string[] {
  const fitting = rows.map(([label]) => label.length).filter((n) => n <= Math.min(30, Math.floor(width * 0.4)));
  const column = Math.max(0, ...fitting) + 4;
  const stacked = width - column < 28;
  return rows.flatMap(([label, text]) => {
    if (!stacked && label.length <= column - 4) {
      const [head, ...more] = wrap(text, width, column);
      return [`${paintLabel(`  ${label}`.padEnd(column), color)}${head!.slice(column)}`.trimEnd(), ...more];
    }
    // The label alone (cut if it is wider than the line itself), the text below it.
    const lead = label.length - label.trimStart().length;
    const labels = wrap(label, width, 2 + lead, 4 + lead).map((l) => paintLabel(l, color));
    return text === "" ? labels : [...labels, ...wrap(text, width, stacked ? 8 : column)];
  });
}

function examples(name: string, { width, color }: HelpStyle): string[] {
  return (EXAMPLES[name] ?? []).flatMap((example, i) => [
    ...(i > 0 ? [""] : []),
    ...wrap(example.what, width - 4, 0).map((l) => sgr(color, 2, 22)(`  # ${l}`)),
    ...example.run.flatMap((command) => wrapCommand(command, width, 2, 6).map(sgr(color, 36, 39))),
  ]);
}

/** A page: its first line, USAGE, each other section that has lines (under its title), then its last line. */
function page(style: HelpStyle, first: string, usage: string, last: string, sections: Record<string, string[]>) {
  const all = Object.entries({ USAGE: wrap(usage, style.width, 2, 6), ...sections }).filter(([, l]) => l.length > 0);
  const body = all.flatMap(([title, lines]) => ["", sgr(style.color, 1, 22)(title), ...lines]);
  return `${[...wrap(first, style.width, 0, 2), ...body, "", ...wrap(last, style.width, 0)].join("\n")}\n`;
}

// Any command's definition. citty's run() takes the command's own parsed args, so a
// CommandDef<SomeArgs> is not a CommandDef<ArgsDef> (a parameter's type is contravariant).
// biome-ignore lint/suspicious/noExplicitAny: no type argument but any fits every command
export type AnyCommand = CommandDef<any>;

/** A citty field's value: as it is, or what its function (possibly async) returns. */
const resolve = <T>(value: Resolvable<T>) => (typeof value === "function" ? (value as () => T)() : value);

const descriptionOf = async (command: AnyCommand) => (await resolve(command.meta))?.description ?? "";

/** The commands of `main`, lazily declared ones as they are. */
export const commandsOf = async (main: AnyCommand) =>
  ((await resolve(main.subCommands)) ?? {}) as Record<string, AnyCommand | (() => Promise<AnyCommand>)>;

const HELP_ROW: Row = ["-h, --help", "Show this help"];

/** `fibrpc <command> --help`: its options from the table, its operands from its record. */
export async function renderCommandHelp(name: CommandName, command: AnyCommand, style: HelpStyle): Promise<string> {
  const args = Object.entries(((await resolve(command.args)) ?? {}) as ArgsDef);
  const operands = args
    .filter(([, a]) => a.type === "positional")
    .map(([n, a]): Row => [a.valueHint ?? `<${n}>`, a.description ?? ""]);
  // "-w, --workers <count>", or "    --url <...>" for an option without a short form.
  const options = optionsOf(name).map((option): Row => {
    const { kind, valueHint } = optionOf(option);
    const label = `${shortOf(option) === undefined ? "    " : `${shortOf(option)}, `}--${option}`;
    return [kind === "switch" ? label : `${label} <${valueHint ?? "value"}>`, helpOf(option, name)];
  });
  const usage = ["fibrpc", name, ...(options.length > 0 ? ["[OPTIONS]"] : []), ...operands.map(([label]) => label)];
  const first = `fibrpc ${name}: ${await descriptionOf(command)}`;
  return page(style, first, usage.join(" "), "Exit codes and environment variables: fibrpc --help", {
    ARGUMENTS: table(operands, style),
    OPTIONS: table([...options, HELP_ROW], style),
    EXAMPLES: examples(name, style),
  });
}

/** Variables help reads itself (listed in the root help next to the FIBRPC_* ones). */
const HELP_ENV: readonly Row[] = [
  ["NO_COLOR", "Set (to anything, even empty): help is plain text even on a terminal"],
  ["FORCE_COLOR", "Set (not 0 or false): help is coloured even off a terminal (NO_COLOR still wins)"],
  ["COLUMNS", `Width help wraps to, at most ${MAX_WIDTH} (default: the terminal's, 80 off a terminal)`],
];

const VARIABLES =
  "Every option is also a variable (--max-n is FIBRPC_MAX_N), and a line of a --config file; " +
  "a flag wins over the variable, the variable over the file.";
const ROOT_LAST = "fibrpc <command> --help (or fibrpc help <command>) lists the options of a command.";

/** The help `rawArgs` ask for (the first word that names a command, else the root's), as text. */
export async function helpText(main: AnyCommand, rawArgs: readonly string[], style: HelpStyle): Promise<string> {
  const commands = await commandsOf(main);
  const name = rawArgs.find((a) => !a.startsWith("-") && Object.hasOwn(commands, a));
  if (name !== undefined) return renderCommandHelp(name as CommandName, await resolve(commands[name]!), style);
  // The root's page: the commands, examples, environment and exit codes.
  const rows = Object.entries(commands).map(async ([n, c]): Promise<Row> => [n, await descriptionOf(await resolve(c))]);
  const takenBy = (option: OptionName) => COMMANDS.filter((c) => takes(c, option)).join(", ");
  const variables = (Object.keys(OPTIONS) as OptionName[]).map((o): Row => [OPTIONS[o].env, `--${o} (${takenBy(o)})`]);
  const codes = Object.values(EXIT_CODES).map((e): Row => [`${String(e.code).padEnd(4)}${e.name}`, e.meaning]);
  const first = `fibrpc ${version}: ${await descriptionOf(main)}`;
  return page(style, first, "fibrpc <command> [OPTIONS]", ROOT_LAST, {
    COMMANDS: table(await Promise.all(rows), style),
    OPTIONS: table([HELP_ROW, ["-v, --version", "Print the version"]], style),
    EXAMPLES: examples("fibrpc", style),
    ENVIRONMENT: [...wrap(VARIABLES, style.width, 2), ...table([...variables, ...HELP_ENV], style)],
    "EXIT CODES": table(codes, style),
  });
}

/**
 * Writes help to stdout, styled for it; a reader that left early (`fibrpc --help | head -3`) is no error,
 * a stdout that cannot be written is IO_ERROR (output.ts).
 */
export async function printHelp(render: (style: HelpStyle) => Promise<string>): Promise<void> {
  await writeResults(await render(helpStyle(process.stdout, process.env)));
}
