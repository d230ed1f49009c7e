/**
 * `call -`'s input: the words of a stream (n separated by spaces, tabs or newlines), read as they
 * come, never the whole stream at once. A word longer than any n (a file that is not a list of n,
 * a line without end) is cut short instead of held: memory stays flat whatever comes in. Leading
 * zeros are not length: a long run of them is kept as one zero, so that `0…030` (any number of
 * zeros) is 30 here as it is on the command line.
 */

/** A word of the input, and the line it starts on (1-based), for the error line of one that is not an n. */
export interface Token {
  text: string;
  line: number;
  /** It went on beyond MAX_TOKEN_LENGTH characters: `text` is its start. */
  cut: boolean;
  /**
   * The word as written, to quote in an error line: its first MAX_TOKEN_LENGTH characters, and "…" if it
   * went on. It differs from `text` when a long run of leading zeros was kept as one.
   */
  written: string;
}

/** Far beyond the longest n a request carries (2^53 − 1: 16 digits), short enough to quote in an error line. */
export const MAX_TOKEN_LENGTH = 40;
/** Words handed on at a time: however large a chunk comes (a pipe may deliver megabytes), memory stays bounded. */
export const MAX_BATCH = 1024;

/** Space, tab, newline, vertical tab, form feed, carriage return: what separates n. */
const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13);

/** Lets the event loop run: a signal's handler, a reply, a timer. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The words of each chunk as they come, up to MAX_BATCH together (one wait per batch, not per word). Between
 * chunks the event loop gets a turn: input that is always there (`yes x`, /dev/zero, a big file of words that
 * are not n) is read without waiting on anything else, and would otherwise keep SIGINT and SIGTERM waiting.
 */
export async function* tokensOf(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<Token[]> {
  const words = new WordReader();
  const decoder = new TextDecoder();
  for await (const chunk of chunks) {
    yield* words.read(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
    await turn();
  }
  // Bytes of a character the input ended inside of: U+FFFD, so that the last word is refused as it would
  // be on a line of its own (or as an argument), not read as the digits before them.
  yield* words.read(decoder.decode());
  yield* words.end();
}

/** Splits text, read a chunk at a time, into words, each with the line it starts on. */
class WordReader {
  private word = "";
  /** The word's start as written, leading zeros and all (for `written`). */
  private head = "";
  private cut = false;
  private line = 1;
  private wordLine = 1;
  /** The last chunk ended in CR: a LF starting the next one ends the same line (CRLF), not another. */
  private afterCr = false;

  *read(text: string): Generator<Token[]> {
    const found: Token[] = [];
    let start = -1;
    let afterCr = this.afterCr;
    for (let i = 0; i <= text.length; i++) {
      const end = i === text.length;
      const code = end ? 32 : text.charCodeAt(i);
      if (!isSpace(code)) {
        if (start < 0) start = i;
        afterCr = false;
        continue;
      }
      if (start >= 0) {
        if (this.word === "") this.wordLine = this.line;
        const more = text.slice(start, i);
        this.word = append(this.word, more);
        if (this.head.length <= MAX_TOKEN_LENGTH) this.head = (this.head + more).slice(0, MAX_TOKEN_LENGTH + 1);
        this.cut ||= this.word.length > MAX_TOKEN_LENGTH;
        start = -1;
      }
      if (!end && this.word !== "") {
        found.push(this.take());
        if (found.length === MAX_BATCH) yield found.splice(0);
      }
      if (end) break;
      // LF, CR LF and a lone CR (old Mac files) each end one line.
      if (code === 13 || (code === 10 && !afterCr)) this.line++;
      afterCr = code === 13;
    }
    this.afterCr = afterCr;
    if (found.length > 0) yield found;
  }

  *end(): Generator<Token[]> {
    if (this.word !== "") yield [this.take()];
  }

  private take(): Token {
    const { word, head } = this;
    const written = head.length > MAX_TOKEN_LENGTH ? `${head.slice(0, MAX_TOKEN_LENGTH)}…` : head;
    const token = { text: word.slice(0, MAX_TOKEN_LENGTH), line: this.wordLine, cut: this.cut, written };
    this.word = "";
    this.head = "";
    this.cut = false;
    return token;
  }
}

/**
 * The word so far and its continuation in the next chunk, kept no longer than needed to say it was cut. A
 * run of leading zeros is kept as one zero once the word would be too long (the word as written is kept
 * apart, to quote).
 */
function append(word: string, more: string): string {
  let joined = word + more;
  if (joined.length > MAX_TOKEN_LENGTH && joined.startsWith("00")) joined = joined.replace(/^0+(?=0)/, "");
  return joined.length > MAX_TOKEN_LENGTH + 1 ? joined.slice(0, MAX_TOKEN_LENGTH + 1) : joined;
}
