/**
 * A closed output never stops what a command is doing (issue 25): a reader that went away
 * (`start NAME | head -3`, `| less` then `q`: EPIPE), a terminal that hung up (EIO) or any other
 * error writing stdout or stderr only stops the writing. Without this, Node raises the stream's
 * 'error' event, nobody listens, and the process dies with a stack trace in the middle of a
 * server's update.
 *
 * Once a stream has failed, every later write to it is dropped (and reported done, so nothing
 * waits for it); `onClosed` is told once, so the command can say so on the other stream.
 */

/** The streams guarded so far, and those found closed. */
const guarded = new WeakSet<NodeJS.WritableStream>();
const closed = new WeakSet<NodeJS.WritableStream>();

/** Whether a write to `stream` failed: everything written to it since is dropped. */
export function isClosed(stream: NodeJS.WritableStream): boolean {
  return closed.has(stream);
}

/** Why the stream closed, as a message shows it: `EPIPE`, `EIO`, or the error's text. */
export function closedWhy(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

/**
 * Guard `stream` (once; a second call for the same stream does nothing): its first error marks it
 * closed, replaces its `write` with one that drops what it is given, and calls `onClosed`.
 */
export function guardOutput(stream: NodeJS.WritableStream, onClosed: (error: unknown) => void): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  // The listener stays for good: a write already under way can report its error after this one.
  stream.on('error', (error: unknown) => {
    if (closed.has(stream)) return;
    markClosed(stream);
    onClosed(error);
  });
}

function markClosed(stream: NodeJS.WritableStream): void {
  closed.add(stream);
  const drop = (_chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  };
  stream.write = drop as NodeJS.WritableStream['write'];
}
