import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/index.js';

/** A fresh data dir under the OS temp dir; removed by `cleanup()`. */
export function tempDir(prefix = 'ice-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A runtime on a fresh data dir; `close()` stops it and deletes the dir. */
export async function tempRuntime(opts: RuntimeOptions = {}): Promise<{ rt: Runtime; dir: string; close: () => Promise<void> }> {
  const t = tempDir();
  const rt = await createRuntime({ dataDir: t.dir, ...opts });
  return {
    rt,
    dir: t.dir,
    close: async () => {
      await rt.stop();
      t.cleanup();
    },
  };
}

let n = 0;
/** A unique intent id for this test process. */
export function iid(prefix = 'i'): string {
  return `${prefix}-${process.pid}-${++n}`;
}
