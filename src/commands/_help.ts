/**
 * --help, rendered here rather than by citty: citty colours whenever a few variables are unset
 * (so `fibrpc call --help | less` showed escape codes) and never wraps (lines of ~250 columns).
 *
 * - Plain text unless stdout is a terminal; NO_COLOR (set to anything, even empty) always wins;
 *   FORCE_COLOR forces colour off a terminal (helpStyle).
 * - Wrapped to the terminal's width (COLUMNS if set, else the terminal's, else 80 off a
 *   terminal), at most MAX_WIDTH, option descriptions with a hanging indent; a word longer than
 *   a line is cut, so no line is ever wider than the width. Example commands are the exception
 *   to cutting: they are broken only between shell words, each line but the last ending in
 *   " \" (a line continuation), so that pasted into a shell they run as written (wrapCommand).
 * - What it prints comes from the tables: each command's options from OPTIONS (src/options.ts),
 *   read directly; its operands and description from its citty record; the exit codes from
 *   EXIT_CODES (src/errors.ts). Only the examples are written here.
 */
import type { ArgDef, ArgsDef, CommandDef } from "citty";
import { EXIT_CODES } from "../errors.ts";
import { COMMANDS, helpOf, OPTIONS, optionOf, optionsOf, shortOf, takes } from "../options.ts";
import type { CommandName, OptionName } from "../options.ts";
import { writeStdout } from "../output.ts";
import { version } from "../version.ts";

export interface HelpStyle {
  color: boolean;
  width: number;
}

/** Below this, help wraps at this width anyway: narrower, a description would get a word a line. */
export const MIN_WIDTH = 40;
/**
 * Help never wraps wider than this, however wide the terminal (clap's max_term_width is 100 too):
 * longer lines are hard to read.
 */
export const MAX_WIDTH = 100;

/** Variables help reads itself (listed in the root help next to the FIBRPC_* ones). */
const HELP_ENV = [
  { name: "NO_COLOR", help: "Set (to anything, even empty): help is plain text even on a terminal" },
  { name: "FORCE_COLOR", help: "Set (not 0 or false): help is coloured even off a terminal (NO_COLOR still wins)" },
  { name: "COLUMNS", help: `Width help wraps to, at most ${MAX_WIDTH} (default: the terminal's, 80 off a terminal)` },
] as const;

/**
 * Colour and width for help written to `out` (process.stdout) with environment `env`: colour
 * only on a terminal (not TERM=dumb) or with FORCE_COLOR, never with NO_COLOR; the width from
 * COLUMNS, else the terminal, else 80, kept within MIN_WIDTH..MAX_WIDTH.
 */
export function helpStyle(
  out: { isTTY?: boolean; columns?: number },
  env: Readonly<Record<string, string | undefined>>,
): HelpStyle {
  const tty = out.isTTY === true;
  const force = env.FORCE_COLOR !== undefined && !["", "0", "false"].includes(env.FORCE_COLOR);
  const color = env.NO_COLOR === undefined && (force || (tty && env.TERM !== "dumb"));
  const columns = /^[1-9]\d*$/.test(env.COLUMNS ?? "") ? Number(env.COLUMNS) : tty && out.columns ? out.columns : 80;
  return { color, width: Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, columns)) };
}

export interface Example {
  /** What it does, printed as a comment above the commands. */
  what: string;
  run: readonly string[];
}

/** Each command's EXAMPLES ("fibrpc" is the root); a command added to cli.ts gets its own here. */
export const EXAMPLES: Readonly<Record<string, readonly Example[]>> = {
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

// ---- text layout -------------------------------------------------------------------------

/** `text` in lines of at most `width` columns: the first indented `first`, the others `rest`. */
export function wrap(text: string, width: number, first: number, rest = first): string[] {
  const lines: string[] = [];
  let line = "";
  let indent = first;
  const push = () => {
    lines.push(" ".repeat(indent) + line);
    line = "";
    indent = rest;
  };
  for (let word of text.split(/\s+/).filter(Boolean)) {
    for (;;) {
      const room = Math.max(1, width - indent);
      const joined = line === "" ? word : `${line} ${word}`;
      if (joined.length <= room) {
        line = joined;
        break;
      }
      if (line !== "") {
        push();
        continue;
      }
      // A word wider than a whole line (a long URL): cut after the last / @ : , | it has within
      // the line (else anywhere), so that no line exceeds the width.
      const at = Math.max(...[..."/@:,|"].map((c) => word.lastIndexOf(c, room - 1)));
      const cut = at > 0 ? at + 1 : room;
      line = word.slice(0, cut);
      word = word.slice(cut);
      push();
      if (word === "") break;
    }
  }
  if (line !== "" || lines.length === 0) push();
  return lines;
}

/**
 * The words of a shell command line, split at spaces outside quotes: `echo 'a b' > f` is
 * ["echo", "'a b'", ">", "f"]. Enough for the examples here (no escapes inside words).
 */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: string | undefined;
  for (const c of command) {
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === " ") {
      if (word !== "") words.push(word);
      word = "";
      continue;
    }
    word += c;
  }
  if (word !== "") words.push(word);
  return words;
}

/**
 * A shell command in lines of at most `width` columns, to be pasted as it is: broken only
 * between words (never inside a word or a quoted string), every line but the last ending in
 * " \" and the next one indented `rest`, so the shell joins them back into the same command.
 * A word too wide for a line at `rest` starts nearer the margin (down to `first`); one too wide
 * even there is left whole, wider than the width: cut, it would no longer run.
 */
export function wrapCommand(command: string, width: number, first: number, rest = first): string[] {
  const words = shellWords(command);
  const lines: string[] = [];
  let line = " ".repeat(first);
  let empty = true;
  words.forEach((word, i) => {
    const tail = i === words.length - 1 ? 0 : 2; // room for " \" unless it is the last word
    if (!empty && line.length + 1 + word.length + tail > width) {
      lines.push(`${line} \\`);
      const indent = Math.max(first, Math.min(rest, width - word.length - tail));
      line = " ".repeat(indent);
      empty = true;
    }
    line = empty ? line + word : `${line} ${word}`;
    empty = false;
  });
  lines.push(line);
  return lines;
}

type Paint = (text: string) => string;
interface Painter {
  title: Paint;
  label: Paint;
  dim: Paint;
}

function painter(color: boolean): Painter {
  const sgr = (open: number, close: number): Paint => (color ? (t) => `\u001b[${open}m${t}\u001b[${close}m` : (t) => t);
  return { title: sgr(1, 22), label: sgr(36, 39), dim: sgr(2, 22) };
}

interface Row {
  label: string;
  text: string;
}

/**
 * Two columns: labels, then their text with a hanging indent. A label too wide for the column
 * has its line to itself, its text starting below; on a narrow width every text does.
 */
function table(rows: readonly Row[], style: HelpStyle, paint: Painter): string[] {
  const limit = Math.min(30, Math.floor(style.width * 0.4));
  const fitting = rows.map((r) => r.label.length).filter((n) => n <= limit);
  let column = 2 + Math.max(0, ...fitting) + 2;
  const stacked = style.width - column < 28;
  if (stacked) column = 8;
  const out: string[] = [];
  for (const { label, text } of rows) {
    const lines = wrap(text, style.width, column);
    const lead = label.length - label.trimStart().length;
    const head = `  ${" ".repeat(lead)}${paint.label(label.trimStart())}`;
    if (stacked || label.length > column - 4) {
      // The label alone (cut if it is wider than the line itself), the text below it.
      out.push(...wrap(label, style.width, 2 + lead, 4 + lead).map((l) => l.replace(/\S.*/, (t) => paint.label(t))));
      if (text !== "") out.push(...lines);
    } else {
      out.push((head + " ".repeat(column - 2 - label.length) + lines[0]!.slice(column)).trimEnd(), ...lines.slice(1));
    }
  }
  return out;
}

function section(title: string, body: readonly string[], paint: Painter): string[] {
  return ["", paint.title(title), ...body];
}

function examples(name: string, style: HelpStyle, paint: Painter): string[] {
  const list = EXAMPLES[name];
  if (list === undefined || list.length === 0) return [];
  const body: string[] = [];
  list.forEach((example, i) => {
    if (i > 0) body.push("");
    body.push(...wrap(example.what, style.width - 4, 0).map((l) => paint.dim(`  # ${l}`)));
    for (const command of example.run) body.push(...wrapCommand(command, style.width, 2, 6).map(paint.label));
  });
  return section("EXAMPLES", body, paint);
}

// ---- the pages ---------------------------------------------------------------------------

// Any command's definition. citty's run() takes the command's own parsed args, so a
// CommandDef<SomeArgs> is not a CommandDef<ArgsDef> (a parameter's type is contravariant).
// biome-ignore lint/suspicious/noExplicitAny: no type argument but any fits every command
export type AnyCommand = CommandDef<any>;

const HELP_ROW: Row = { label: "-h, --help", text: "Show this help" };

/** One option's label: "-w, --workers <count>", or "    --url <...>" for one without a short form. */
function optionLabel(name: OptionName): string {
  const { kind, valueHint } = optionOf(name);
  const short = shortOf(name);
  const hint = kind === "switch" ? "" : ` <${valueHint ?? "value"}>`;
  return `${short === undefined ? "    " : `${short}, `}--${name}${hint}`;
}

async function resolve<T>(value: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

async function descriptionOf(command: AnyCommand): Promise<string> {
  return (await resolve(command.meta))?.description ?? "";
}

/** `fibrpc <command> --help`: its options from the table, its operands from its record. */
export async function renderCommandHelp(name: CommandName, command: AnyCommand, style: HelpStyle): Promise<string> {
  const paint = painter(style.color);
  const args: ArgsDef = (await resolve(command.args)) ?? {};
  const operands = Object.entries(args).filter((entry): entry is [string, ArgDef] => entry[1].type === "positional");
  const operand = ([n, a]: [string, ArgDef]) => a.valueHint ?? `<${n}>`;
  const options = optionsOf(name);
  const usage = ["fibrpc", name, ...(options.length > 0 ? ["[OPTIONS]"] : []), ...operands.map(operand)].join(" ");
  const rows = options.map((option) => ({ label: optionLabel(option), text: helpOf(option, name) }));
  const operandRows = operands.map((o) => ({ label: operand(o), text: o[1].description ?? "" }));
  const lines = [
    ...wrap(`fibrpc ${name}: ${await descriptionOf(command)}`, style.width, 0, 2),
    ...section("USAGE", wrap(usage, style.width, 2, 6), paint),
    ...(operands.length === 0 ? [] : section("ARGUMENTS", table(operandRows, style, paint), paint)),
    ...section("OPTIONS", table([...rows, HELP_ROW], style, paint), paint),
    ...examples(name, style, paint),
    "",
    ...wrap("Exit codes and environment variables: fibrpc --help", style.width, 0),
  ];
  return `${lines.join("\n")}\n`;
}

/** `fibrpc --help` (and `fibrpc` alone): the commands, examples, environment and exit codes. */
export function renderRootHelp(description: string, commands: readonly Row[], style: HelpStyle): string {
  const paint = painter(style.color);
  const names = Object.keys(OPTIONS) as OptionName[];
  const takenBy = (name: OptionName) => COMMANDS.filter((c) => takes(c, name)).join(", ");
  const environment = [
    ...wrap(
      "Every option is also a variable (--max-n is FIBRPC_MAX_N), and a line of a --config file; " +
        "a flag wins over the variable, the variable over the file.",
      style.width,
      2,
    ),
    ...table(
      [
        ...names.map((name) => ({ label: OPTIONS[name].env, text: `--${name} (${takenBy(name)})` })),
        ...HELP_ENV.map((v) => ({ label: v.name, text: v.help })),
      ],
      style,
      paint,
    ),
  ];
  const exitCodes = table(
    Object.values(EXIT_CODES).map((e) => ({ label: `${String(e.code).padEnd(4)}${e.name}`, text: e.meaning })),
    style,
    paint,
  );
  const lines = [
    ...wrap(`fibrpc ${version}: ${description}`, style.width, 0, 2),
    ...section("USAGE", wrap("fibrpc <command> [OPTIONS]", style.width, 2, 6), paint),
    ...section("COMMANDS", table(commands, style, paint), paint),
    ...section(
      "OPTIONS",
      table([HELP_ROW, { label: "-v, --version", text: "Print the version" }], style, paint),
      paint,
    ),
    ...examples("fibrpc", style, paint),
    ...section("ENVIRONMENT", environment, paint),
    ...section("EXIT CODES", exitCodes, paint),
    "",
    ...wrap("fibrpc <command> --help (or fibrpc help <command>) lists the options of a command.", style.width, 0),
  ];
  return `${lines.join("\n")}\n`;
}

/** The commands of `main`, each loaded (lazily declared ones too). */
export async function commandsOf(main: AnyCommand): Promise<Record<string, AnyCommand | (() => Promise<AnyCommand>)>> {
  return ((await resolve(main.subCommands)) ?? {}) as Record<string, AnyCommand | (() => Promise<AnyCommand>)>;
}

/** The help `rawArgs` ask for (the first word that names a command, else the root's), as text. */
export async function helpText(main: AnyCommand, rawArgs: readonly string[], style: HelpStyle): Promise<string> {
  const commands = await commandsOf(main);
  const name = rawArgs.find((a) => !a.startsWith("-") && Object.hasOwn(commands, a));
  if (name !== undefined) return renderCommandHelp(name as CommandName, await resolve(commands[name]!), style);
  const rows = await Promise.all(
    Object.entries(commands).map(async ([label, c]) => ({ label, text: await descriptionOf(await resolve(c)) })),
  );
  return renderRootHelp(await descriptionOf(main), rows, style);
}

/**
 * Writes help to stdout, styled for it. A reader that left early (`fibrpc --help | head -3`) is not an error:
 * help is done either way.
 */
export async function printHelp(render: (style: HelpStyle) => Promise<string>): Promise<void> {
  const text = await render(helpStyle(process.stdout, process.env));
  const gone = (err: unknown) => (err as { code?: string }).code === "EPIPE";
  // Bun reports a closed pipe both to the write's callback and as the stream's "error" event.
  process.stdout.on("error", (err) => {
    if (!gone(err)) throw err;
  });
  try {
    await writeStdout(text);
  } catch (err) {
    if (!gone(err)) throw err;
  }
}
