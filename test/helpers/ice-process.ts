import { startIceProcess, type IceProcess } from '../../src/testing/index.js';

export { ICE_BIN } from '../../src/testing/index.js';
export type { IceProcess } from '../../src/testing/index.js';

/** Starts `ice dev --data <dir>` (inspector on a free port). */
export function startIceDev(dataDir: string, extraArgs: string[] = []): Promise<IceProcess> {
  return startIceProcess(dataDir, { args: extraArgs });
}
