/** Where a command writes: injectable so tests capture output without a child process. */
export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}
