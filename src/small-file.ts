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

/** The file's bytes, if there are at most `limit`; else FileTooLarge. A failure to open or read is thrown as is. */
export function readSmallFile(path: string, limit: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const bytes = Buffer.allocUnsafe(limit + 1);
    let size = 0;
    while (size <= limit) {
      const read = readSync(fd, bytes, size, limit + 1 - size, null);
      if (read === 0) break;
      size += read;
    }
    if (size > limit) throw new FileTooLarge(limit);
    return bytes.subarray(0, size);
  } finally {
    closeSync(fd);
  }
}
