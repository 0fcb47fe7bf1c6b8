/**
 * Runs the relay's CLI from the TypeScript sources (`node --import tsx bench/targets/relay-main.ts --config FILE`).
 * bin/msrprelay.js prefers dist/ whenever it exists; the bench uses this entry
 * instead when dist/ is older than the sources, so it never measures stale code.
 */
import { main } from '../../core/cli.ts';

process.exitCode = await main(process.argv.slice(2));
