// The pcap module's public surface.
export * from './errors.js';
export * from './linktypes.js';
export * from './link.js';
export * from './reader.js';
export * from './writer.js';
export * from './frames.js';
export * from './process.js';
