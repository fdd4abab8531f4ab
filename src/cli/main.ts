// `labelwall` entry point (bin/labelwall imports this): run the command line, exit with its code.
// First: a daemon must survive a SIGHUP from its very start (see early-hup.ts).
import '../daemon/early-hup.js';
import { run } from './program.js';
import { EXIT_IOERR, EXIT_PIPE } from './errors.js';
import { describeErrno } from '../util/errno.js';

// `labelwall ... | head`: the reader went away. Stop quietly, as if killed by SIGPIPE
// (status 128 + 13), instead of printing a write error. Any other write error (a full disk,
// `> /dev/full`, EIO) is one line on stderr and exit 74, never a stack trace; when stderr
// itself cannot be written, just the exit status. A running daemon (it has its own
// uncaughtException handler) gets the error there: its fatal-error path removes its rules.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT_PIPE);
    if (process.listenerCount('uncaughtException') > 0) throw e;
    if (stream === process.stdout) process.stderr.write(`labelwall: cannot write output: ${describeErrno(e)}\n`);
    process.exit(EXIT_IOERR);
  });
}

const code = await run(process.argv);
// Set the code and let the event loop drain (stdout may still hold output when piped).
process.exitCode = code;
