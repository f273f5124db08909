// The launcher is part of the public testing kit (ice-runtime/testing).
export * from '../../src/testing/nats-server.js';
