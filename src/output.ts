/**
 * stdout carries results only. Writes resolve once the data is handed to the OS, so that exiting
 * right after cannot cut off a large result (fib(1000000) is 208,988 digits) on a pipe.
 */
export function writeStdout(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
