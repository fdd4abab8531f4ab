// The label module's public surface.
export * from './compat.js';
export * from './profile.js';
export * from './registry.js';
export * from './keys.js';
