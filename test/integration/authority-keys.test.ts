/**
 * The authority's public keys are published: `rt.authorityKeys()`, the admin operation
 * `authority.keys` (`ice authority keys --nats`), the data dir (`ice authority keys --data`),
 * and the node's NATS micro service (metadata and the `authority-keys` endpoint). One node and
 * a cluster of two, over a real nats-server.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { connect as natsConnect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorityServiceInfo } from '../../src/cli/journal-audit.js';
import { createRuntime, type Runtime } from '../../src/index.js';
import type { AuthorityPublicKey } from '../../src/authority/index.js';
import { NatsTransport, registerNodeService } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/runtime.js';

/** A published key is self-consistent: its id is sha256(SPKI DER)[0:16], its raw key the PEM's. */
function expectConsistent(k: AuthorityPublicKey): void {
  const pub = createPublicKey(k.publicKeyPem);
  expect(k.alg).toBe('ed25519');
  expect(k.keyId).toBe(
    createHash('sha256')
      .update(pub.export({ type: 'spki', format: 'der' }))
      .digest('hex')
      .slice(0, 16),
  );
  expect(k.publicKey).toBe(pub.export({ format: 'jwk' }).x);
  expect(Buffer.from(k.publicKey, 'base64url')).toHaveLength(32);
}

describe('authority keys: one node (embedded) over NATS', () => {
  let srv: NatsServer;
  let t: NatsTransport;
  let rt: Runtime;
  const dir = tempDir('ice-keys-');
  beforeAll(async () => {
    srv = await startNatsServer({ jetstream: false });
    t = await NatsTransport.connect({ servers: srv.url });
    rt = await createRuntime({ dataDir: dir.dir, transport: t, node: 'k1' });
  }, 30_000);
  afterAll(async () => {
    await rt?.stop();
    await t?.close();
    await srv?.stop();
    dir.cleanup();
  });

  it('the runtime, the admin operation and the data dir give the same key', async () => {
    const keys = await rt.authorityKeys();
    expect(keys).toHaveLength(1);
    expect(keys[0]!.keyId).toBe(rt.authorityKeyId);
    expectConsistent(keys[0]!);
    const overNats = await ice(['authority', 'keys', '--json', '--nats', srv.url]);
    expect(overNats.code, overNats.stderr).toBe(0);
    expect(JSON.parse(overNats.stdout)).toEqual(keys);
    const local = await ice(['authority', 'keys', '--json', '--data', dir.dir]);
    expect(JSON.parse(local.stdout)).toEqual(keys);
    const text = await ice(['authority', 'keys', '--data', dir.dir]);
    expect(text.stdout).toContain(`${keys[0]!.keyId}  ed25519  ${keys[0]!.publicKey}`);
    expect(text.stdout).toContain('-----BEGIN PUBLIC KEY-----');
  });

  it('the NATS micro service shows the key in its metadata and answers it on ice.node.<node>.authority.keys', async () => {
    const svc = await registerNodeService(t, { node: rt.node, version: '0.0.1', status: () => ({}), ...(await authorityServiceInfo(rt)) });
    const nc = await natsConnect({ servers: srv.url });
    try {
      const info = (await nc.request('$SRV.INFO.ice-runtime', '', { timeout: 5000 })).json<{
        metadata: Record<string, string>;
        endpoints: Array<{ name: string; subject: string }>;
      }>();
      const [key] = await rt.authorityKeys();
      expect(info.metadata).toMatchObject({
        node: rt.node,
        authority_key_id: key!.keyId,
        authority_alg: 'ed25519',
        authority_public_key: key!.publicKey,
      });
      expect(info.endpoints.map((e) => e.subject)).toContain(`ice.node.${rt.node}.authority.keys`);
      const answer = (await nc.request(`ice.node.${rt.node}.authority.keys`, '', { timeout: 5000 })).json<AuthorityPublicKey[]>();
      expect(answer).toEqual([key]);
    } finally {
      await nc.close();
      await svc.stop();
    }
  });

  it('a data dir without a key is refused with what to do', async () => {
    const empty = tempDir('ice-nokey-');
    try {
      const r = await ice(['authority', 'keys', '--data', empty.dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no authority key');
    } finally {
      empty.cleanup();
    }
  });
});

describe('authority keys: a cluster of two nodes', () => {
  let srv: NatsServer;
  const nodes: Runtime[] = [];
  beforeAll(async () => {
    srv = await startNatsServer();
    for (const node of ['c1', 'c2']) nodes.push(await createRuntime({ node, cluster: { servers: srv.url } }));
  }, 30_000);
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await srv?.stop();
  });

  it('every node key is listed, each with its node, this node first', async () => {
    const keys = await nodes[0]!.authorityKeys();
    expect(keys.map((k) => [k.keyId, k.node])).toEqual(
      expect.arrayContaining([
        [nodes[0]!.authorityKeyId, 'c1'],
        [nodes[1]!.authorityKeyId, 'c2'],
      ]),
    );
    expect(keys[0]!.keyId).toBe(nodes[0]!.authorityKeyId);
    keys.forEach(expectConsistent);
    const r = await ice(['authority', 'keys', '--json', '--nats', srv.url]);
    expect(r.code, r.stderr).toBe(0);
    expect(new Set((JSON.parse(r.stdout) as AuthorityPublicKey[]).map((k) => k.keyId))).toEqual(new Set(keys.map((k) => k.keyId)));
  });
});
