import { ownershipContract } from '../helpers/ownership-contract.js';
import { tempDir } from '../helpers/runtime.js';
import { startNatsServer } from '../helpers/nats-server.js';
import { DataDirLock } from '../../src/store/index.js';
import { LocalOwnership, LeaseOwnership } from '../../src/ownership/index.js';
import { LeaseManager } from '../../src/store/jetstream/lease.js';
import { NatsTransport } from '../../src/transport/index.js';
import { ManualClock } from '../../src/index.js';
import type { OwnershipPort } from '../../src/host/ports.js';

ownershipContract('data-dir lock (embedded)', async () => {
  const t = tempDir();
  const locks: DataDirLock[] = [];
  return {
    open(name: string): Promise<OwnershipPort> {
      // ownership of every actor comes with the data-dir lock: a second process is refused
      locks.push(DataDirLock.acquire(t.dir));
      return Promise.resolve(new LocalOwnership(name));
    },
    close() {
      for (const l of locks) l.release();
      t.cleanup();
      return Promise.resolve();
    },
  };
});

ownershipContract('KV leases (cluster)', async () => {
  const srv = await startNatsServer();
  const clock = new ManualClock(Date.now());
  const conns: NatsTransport[] = [];
  const managers = new Map<OwnershipPort, LeaseManager>();
  return {
    async open(name: string): Promise<OwnershipPort> {
      const t = await NatsTransport.connect({ servers: srv.url });
      conns.push(t);
      const holder: { o?: LeaseOwnership } = {};
      const m = await LeaseManager.open(t.connection, {
        node: name,
        clock,
        ttlMs: 1000,
        renewEveryMs: 1e9,
        onLost: (k, h) => holder.o?.lost(k, h),
      });
      const o = new LeaseOwnership(m, clock);
      holder.o = o;
      managers.set(o, m);
      return o;
    },
    expire: () => clock.advance(1500),
    renew: (o) => managers.get(o)!.renewAll(),
    async close() {
      for (const m of managers.values()) await m.close();
      for (const t of conns) await t.close();
      await srv.stop();
    },
  };
});
