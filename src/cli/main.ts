// `labelwall` entry point (bin/labelwall imports this): run the command line, exit with its code.
// First: a daemon must survive a SIGHUP from its very start (see early-hup.ts).
import '../daemon/early-hup.js';
import { run } from './program.js';

// `labelwall ... | head`: the reader went away. Stop quietly, as if killed by SIGPIPE
// (status 128 + 13), instead of printing a write error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    throw e;
  });
}

const code = await run(process.argv);
// Set the code and let the event loop drain (stdout may still hold output when piped).
process.exitCode = code;
