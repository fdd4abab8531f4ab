// How a system call's error reads in a one-line message: its code and reason, without the
// syscall and path Node appends ("ENOSPC: no space left on device, write" -> "ENOSPC: no space
// left on device"; "EISDIR: illegal operation on a directory, open '/x'" -> "EISDIR: illegal
// operation on a directory"), for messages that name the file themselves.
export function describeErrno(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.message !== 'string') return String(e);
  const msg = err.message.replace(/, [a-z]+(?: '.*')?$/, '');
  return err.code && !msg.startsWith(err.code) ? `${err.code}: ${msg}` : msg;
}
