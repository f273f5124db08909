import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime, type Outcome } from '../../src/index.js';
import { checkInvariants } from '../../src/testing/index.js';
import { iid, tempDir } from '../helpers/runtime.js';

async function history(dir: string): Promise<Map<string, Outcome>> {
  const rt = await createRuntime({ dataDir: dir });
  const acked = new Map<string, Outcome>();
  try {
    await rt.spawn('deployment/a', { service: 'a' });
    await rt.grants.issue({ subject: 'agent:x', scope: 'deployment/a:CONFIGURE' });
    for (let i = 1; i <= 5; i++) {
      const id = iid();
      acked.set(
        id,
        await rt.propose({
          id,
          proposer: 'agent:x',
          target: 'deployment/a',
          action: 'CONFIGURE',
          params: { version: `1.0.${i}`, replicas: i },
        }),
      );
    }
    const denied = iid();
    acked.set(
      denied,
      await rt.propose({ id: denied, proposer: 'agent:x', target: 'deployment/a', action: 'SUBMIT', params: { author: 'x' } }),
    );
  } finally {
    await rt.stop();
  }
  return acked;
}

describe('checkInvariants (testing kit)', () => {
  it('passes on an intact data dir', async () => {
    const t = tempDir();
    try {
      const acked = await history(t.dir);
      const r = await checkInvariants({ dataDir: t.dir, acknowledged: acked });
      expect(r).toMatchObject({ ok: true, violations: [], acknowledged: 6, actors: 1 });
    } finally {
      t.cleanup();
    }
  });

  it('finds a snapshot that differs from the replay of its journal', async () => {
    const t = tempDir();
    try {
      const acked = await history(t.dir);
      const db = new Database(join(t.dir, 'ice.db'));
      db.prepare(`UPDATE snapshots SET body = replace(body, '"replicas":5', '"replicas":50') WHERE actor = 'deployment/a'`).run();
      db.close();
      const r = await checkInvariants({ dataDir: t.dir, acknowledged: acked });
      expect(r.ok).toBe(false);
      expect(r.violations).toContain('deployment/a: snapshot context differs from replay');
    } finally {
      t.cleanup();
    }
  });

  it('finds an acknowledged intent that is missing from the journal', async () => {
    const t = tempDir();
    try {
      const acked = await history(t.dir);
      acked.set('never-executed', {
        v: 1,
        status: 'executed',
        intentId: 'never-executed',
        actor: 'deployment/a',
        from: 'draft',
        to: 'draft',
        decisionId: 'd',
        seq: 3,
      });
      const r = await checkInvariants({ dataDir: t.dir, acknowledged: acked });
      expect(r.violations).toContain('acknowledged never-executed has 0 transitions');
    } finally {
      t.cleanup();
    }
  });
});
