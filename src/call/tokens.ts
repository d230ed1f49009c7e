/**
 * `call -`'s input: the words of a stream (n separated by spaces, tabs or newlines), read as they
 * come, never the whole stream at once. A word longer than any n (a file that is not a list of n,
 * a line without end) is cut short instead of held: memory stays flat whatever comes in. Leading
 * zeros are not length: a run of them is kept as one zero, so that `0…030` (any number of zeros)
 * is 30 here as it is on the command line.
 */

/** A word of the input, and the line it starts on (1-based), for the error line of one that is not an n. */
export interface Token {
  text: string;
  line: number;
  /** It went on beyond MAX_TOKEN_LENGTH characters: `text` is its start. */
  cut: boolean;
}

/** Far beyond the longest n a request carries (2^53 − 1: 16 digits), short enough to quote in an error line. */
export const MAX_TOKEN_LENGTH = 40;
/** Words handed on at a time: however large a chunk comes (a pipe may deliver megabytes), memory stays bounded. */
export const MAX_BATCH = 1024;

/** Space, tab, newline, vertical tab, form feed, carriage return: what separates n. */
const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13);

/** The words of each chunk as they come, up to MAX_BATCH together (one wait per batch, not per word). */
export async function* tokensOf(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<Token[]> {
  const decoder = new TextDecoder();
  let word = "";
  let cut = false;
  let line = 1;
  let wordLine = 1;
  for await (const chunk of chunks) {
    const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    const found: Token[] = [];
    let start = -1;
    for (let i = 0; i <= text.length; i++) {
      const end = i === text.length;
      const code = end ? 32 : text.charCodeAt(i);
      if (!isSpace(code)) {
        if (start < 0) start = i;
        continue;
      }
      if (start >= 0) {
        if (word === "") wordLine = line;
        word = append(word, text.slice(start, i));
        cut ||= word.length > MAX_TOKEN_LENGTH;
        start = -1;
        if (!end) {
          found.push({ text: word.slice(0, MAX_TOKEN_LENGTH), line: wordLine, cut });
          if (found.length === MAX_BATCH) yield found.splice(0);
          word = "";
          cut = false;
        }
      } else if (!end && word !== "") {
        found.push({ text: word.slice(0, MAX_TOKEN_LENGTH), line: wordLine, cut });
        if (found.length === MAX_BATCH) yield found.splice(0);
        word = "";
        cut = false;
      }
      if (code === 10 && !end) line++;
    }
    if (found.length > 0) yield found;
  }
  if (word !== "") yield [{ text: word.slice(0, MAX_TOKEN_LENGTH), line: wordLine, cut }];
}

/**
 * The word so far and its continuation in the next chunk, a run of leading zeros as one zero, kept no
 * longer than needed to say it was cut.
 */
function append(word: string, more: string): string {
  let joined = word + more;
  if (joined.startsWith("00")) joined = joined.replace(/^0+(?=0)/, "");
  return joined.length > MAX_TOKEN_LENGTH + 1 ? joined.slice(0, MAX_TOKEN_LENGTH + 1) : joined;
}
