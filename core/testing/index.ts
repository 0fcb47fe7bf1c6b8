/** Test tools for the relay and for plugin authors: `msrprelay/testing`. */
export * from './client.ts';
export * from './harness.ts';
export { freePort, waitForPort } from './ports.ts';
export { makeTestCertificates, type TestCertificates } from '../transport/self-signed.ts';
export { createStreamPair, PairedStream, type StreamPairOptions } from './stream-pair.ts';
