// `labelwall` entry point (bin/labelwall imports this): run the command line, exit with its code.
import { run } from './program.js';

const code = await run(process.argv);
// Set the code and let the event loop drain (stdout may still hold output when piped).
process.exitCode = code;
