// The label module's public surface.
export * from './compat.js';
export * from './keys.js';
