// Runs the relay with the JSON-file plugin of this folder:
//   node bin/msrprelay.js --config examples/custom-auth-plugin/msrprelay.config.js
// then, for instance:
//   node bin/msrprelay.js client --selftest --relay 'msrp://127.0.0.1:2857;tcp'
import { fileURLToPath } from 'node:url';

/** @type {import('../../core/index.ts').RelayConfigInput} */
export default {
  hostname: 'localhost',
  listen: [{ transport: 'tcp', host: '127.0.0.1', port: 2857, insecureAuth: true }],
  plugins: [
    // A path is resolved against this file's folder; an npm package would be named 'json-file-auth'
    // (published as msrprelay-plugin-json-file-auth) or by its full package name.
    ['./json-file-auth.ts', { file: fileURLToPath(new URL('./accounts.json', import.meta.url)) }],
    ['domain-map', { default: 'example.com' }],
  ],
};
