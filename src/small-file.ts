/**
 * Reads a file fibrpc expects to be small (a --config file, serve's status file, a PEM file) without trusting
 * it to be: at most `limit` bytes are read, so /dev/zero or a log file given by mistake is one error line, not
 * a hang that fills memory.
 */
import { closeSync, openSync, readSync } from "node:fs";

/** The file held more than the limit: it is not the kind of file asked for. */
export class FileTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`larger than ${limit >= 1 << 20 ? `${limit >> 20} MiB` : `${limit >> 10} KiB`}`);
  }
}

/** Read a piece at a time: what is kept is the file's own size, not the limit's (a PEM file goes to every worker). */
const PIECE = 64 << 10;

/** The file's bytes, if there are at most `limit`; else FileTooLarge. A failure to open or read is thrown as is. */
export function readSmallFile(path: string, limit: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const pieces: Buffer[] = [];
    let size = 0;
    while (size <= limit) {
      const piece = Buffer.allocUnsafe(Math.min(PIECE, limit + 1 - size));
      const read = readSync(fd, piece, 0, piece.length, null);
      if (read === 0) break;
      pieces.push(piece.subarray(0, read));
      size += read;
    }
    if (size > limit) throw new FileTooLarge(limit);
    return Buffer.concat(pieces, size);
  } finally {
    closeSync(fd);
  }
}
