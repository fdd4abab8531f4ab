// `labelwall keygen --out FILE [--force]`: a new random 32-byte key, mode 0600. Prints only the key's fingerprint.
import type { Command } from 'commander';
import { GENERATED_KEY_BYTES, generateKeyFile } from '../label/keys.js';

export function register(program: Command): void {
  program
    .command('keygen')
    .description(`write a new random ${GENERATED_KEY_BYTES}-byte label key as hex to a file created with mode 0600`)
    .requiredOption('-o, --out <file>', 'key file to create (required)')
    .option('-f, --force', 'replace the file if it exists (atomically)')
    .addHelpText(
      'after',
      `
The key itself is never printed, only its fingerprint (the first 8 hex digits of its SHA-256),
which names the key in status, logs and pcap output. A fingerprint is not a key id: the key id
(0-7) a v1 label names is given where the key is used (--key-file ID=FILE; in the config,
keys: NAME: { file: PATH, id: ID }).`,
    )
    .action((opts: { out: string; force?: boolean }) => {
      const id = generateKeyFile(opts.out, { force: opts.force });
      process.stdout.write(`wrote a new ${GENERATED_KEY_BYTES}-byte key to ${opts.out} (mode 0600, fingerprint ${id})\n`);
    });
}
