// Imported first by the CLI entry point: Node's default action for SIGHUP ends the process, and
// a daemon takes a while to start (modules, keys, queues, rules). From the first moment of
// `labelwall agent|verifier`, a SIGHUP is only noted; runDaemon takes over the signal and
// reloads once it runs, so a reload request that came during start-up is not lost either.
let pending = 0;
const early = (): void => {
  pending++;
};
const role = process.argv[2];
if (role === 'agent' || role === 'verifier') process.on('SIGHUP', early);

/** Stops noting SIGHUPs (the daemon's handler is installed) and says how many arrived. */
export function takeEarlyHups(): number {
  process.off('SIGHUP', early);
  const n = pending;
  pending = 0;
  return n;
}
