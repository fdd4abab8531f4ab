// The wire module's public surface.
export * from './malformed.js';
export * from './checksum.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './tcp.js';
export * from './tcpopts.js';
export * from './packet.js';
export * from './build.js';
