/** The pure MSRP protocol layer: no sockets, no state beyond one stream or one nonce table. */
export * from './framer.ts';
export * from './message.ts';
export * from './uri.ts';
export * from './digest.ts';
export * from './status.ts';
export * from './mask.ts';
