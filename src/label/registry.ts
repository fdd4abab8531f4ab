// Label profiles by name (the one table that lists them). A new profile is one file that
// implements LabelProfile (profile.ts) plus one line here.
import { any } from './any.js';
import { compat } from './compat.js';
import type { LabelProfile } from './profile.js';
import { v1 } from './v1.js';

const profiles = new Map<string, LabelProfile>();

/** Adds a profile under its name; a name is registered once. */
export function registerProfile(profile: LabelProfile): void {
  if (profiles.has(profile.name)) throw new Error(`label profile ${profile.name} is already registered`);
  profiles.set(profile.name, profile);
}

/** The profile registered under `name`; throws for an unknown name. */
export function getProfile(name: string): LabelProfile {
  const p = profiles.get(name);
  if (!p) throw new Error(`unknown label profile ${JSON.stringify(name)} (known: ${profileNames().join(', ')})`);
  return p;
}

export function profileNames(): string[] {
  return [...profiles.keys()];
}

/** The profile the daemons use unless told otherwise. */
export const DEFAULT_PROFILE = 'compat';

registerProfile(compat);
registerProfile(v1);
registerProfile(any);
