// The label module's public surface.
export * from './any.js';
export * from './compat.js';
export * from './profile.js';
export * from './registry.js';
export * from './keys.js';
export * from './v1.js';
