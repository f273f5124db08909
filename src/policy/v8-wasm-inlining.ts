import { setFlagsFromString } from 'node:v8';

/**
 * Node 20's V8 (11.3) can die with `Fatal error … unreachable code` in
 * `Deoptimizer::DoComputeBuiltinContinuation` (SIGTRAP, exit 133) when TurboFan code that
 * inlined a call from JavaScript into WebAssembly deoptimizes: the JS→Wasm builtin
 * continuation frame it has to rebuild is one it cannot. Cedar is WebAssembly called on
 * every decision with a policy set: 6 of 22 runs of 40 000 evaluations died
 * (`scripts/repro-cedar-deopt-crash.mjs`). Turning the inlining of JS→Wasm calls off removes
 * that frame kind: 0 of 30 runs of the same loop died. Only
 * that inlining is turned off (a call into Cedar is not inlined; everything else still is),
 * and only on Node 20, where it was measured. Set when this module loads, before any call
 * into Cedar can have been optimized.
 */
export const JS_WASM_INLINING_OFF = process.versions.node.startsWith('20.');
if (JS_WASM_INLINING_OFF) setFlagsFromString('--no-turbo-inline-js-wasm-calls');
