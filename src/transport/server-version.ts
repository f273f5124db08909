/**
 * nats-server versions with known JetStream data-loss bugs (Jepsen's 2025 analysis of NATS):
 * 2.10.20–2.10.22 lost streams after kill -9; 2.12.0–2.12.2 had several loss bugs fixed in
 * 2.12.3. A node warns when it connects to one of them.
 */
export function jetStreamVersionWarning(version: string | undefined): string | undefined {
  if (!version) return undefined;
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  const [maj, min, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (maj === 2 && min === 10 && patch >= 20 && patch <= 22) {
    return `nats-server ${version} can lose JetStream streams on kill -9 (fixed in 2.10.23); upgrade`;
  }
  if (maj === 2 && min === 12 && patch < 3) {
    return `nats-server ${version} has JetStream data-loss bugs fixed in 2.12.3; upgrade`;
  }
  if (maj === 2 && min < 10) {
    return `nats-server ${version} acknowledges JetStream writes before fsync and rejects sync_interval; a power loss can drop acknowledged data`;
  }
  return undefined;
}
