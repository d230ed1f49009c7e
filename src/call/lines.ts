/**
 * What `call` prints for one n: the result on stdout (with --json, one object per n whatever the
 * outcome), an error as one line on stderr. Shared by `call N...` and `call -` (stream.ts).
 */
import { ExitCode } from "../errors.ts";
import { withHint } from "../hints.ts";
import type { Masker } from "../mask.ts";
import { printable } from "../printable.ts";
import { exitCodeOf, type CallOutcome, type SendOutcome } from "../rpc/client.ts";

export interface LineStyle {
  json: boolean;
  /** Results in completion order (call - --unordered): a text line then names its n, "30 832040". */
  named: boolean;
  masker: Masker;
}

/** One n's lines: on stdout (a result, or --json's object for any outcome), on stderr (an error), and its exit code. */
export interface Printed {
  stdout?: string;
  stderr?: string;
  code: ExitCode;
}

export function linesOf(outcome: CallOutcome | SendOutcome, style: LineStyle): Printed {
  const ms = Math.round(outcome.ms * 1000) / 1000;
  if (outcome.ok && "correlationId" in outcome) {
    // Sent (--no-wait): the broker took it; with --json, what the next stage will see in its reply.
    if (!style.json) return { code: ExitCode.OK };
    const line = { n: outcome.n, correlation_id: outcome.correlationId, ms, trace_id: outcome.trace?.trace_id };
    return { stdout: `${JSON.stringify(line)}\n`, code: ExitCode.OK };
  }
  if (outcome.ok) {
    if (!style.json)
      return { stdout: style.named ? `${outcome.n} ${outcome.result}\n` : `${outcome.result}\n`, code: 0 };
    const trace = traceIdOf(outcome);
    const traced = trace ? `,"trace_id":"${trace}"` : "";
    return { stdout: `{"n":${outcome.n},"result":"${outcome.result}","ms":${ms}${traced}}\n`, code: ExitCode.OK };
  }
  // An error of ours carries a hint of what to do; an error reply says it all itself. Either may
  // quote text from elsewhere (a server's reply, a socket error): masked, and one line whatever
  // it holds (control characters shown escaped, not obeyed by the terminal).
  const message = printable(style.masker.mask(outcome.error ? withHint(outcome.error, "call") : outcome.message));
  const stderr = `fib(${outcome.n}): ${printable(outcome.code)}: ${message}\n`;
  const stdout = style.json
    ? errorLine({ n: outcome.n }, outcome.code, message, outcome.ms, style.masker, traceIdOf(outcome))
    : undefined;
  return { stdout, stderr, code: exitCodeOf(outcome) };
}

/**
 * The JSON line of a failed call: {"n", "error": {code, message}, "ms"}; its text masked and printable
 * (again: it does no harm). `about` names what failed: the n, or (call -) the input that is not one.
 */
export function errorLine(
  about: { n: number } | { input: string; line: number },
  code: string,
  message: string,
  ms: number,
  masker: Masker,
  trace?: string,
): string {
  const error = { code: printable(code), message: printable(masker.mask(message)) };
  return `${JSON.stringify({ ...about, error, ms: Math.round(ms * 1000) / 1000, trace_id: trace })}\n`;
}

/**
 * The trace of the call's last attempt (its send span's, tracing/tracer.ts) for a --json line when tracing
 * is on; undefined when it is off, so the line is as before (JSON.stringify leaves an undefined field out).
 */
export function traceIdOf(outcome: CallOutcome | SendOutcome): string | undefined {
  return outcome.trace?.trace_id;
}
