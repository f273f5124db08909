import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalJson, sha256Hex, type Decision, type UnsignedDecision } from '../protocol/index.js';

/**
 * An authority's public key as published (`ice authority keys`, the admin op `authority.keys`,
 * the NATS service metadata, journal exports): `publicKey` is the raw 32-byte ed25519 key in
 * base64url (no padding), `publicKeyPem` the same key as SPKI PEM; `keyId` is the first 16 hex
 * characters of sha256 over the SPKI DER bytes.
 */
export interface AuthorityPublicKey {
  keyId: string;
  alg: 'ed25519';
  publicKey: string;
  publicKeyPem: string;
  /** The cluster node whose key it is (cluster mode). */
  node?: string;
}

/**
 * The authority's ed25519 identity. Decisions are signed over the canonical JSON of every
 * field but `sig`; hosts verify with the public key before executing anything.
 */
export class AuthorityKey {
  readonly keyId: string;
  readonly publicKeyPem: string;
  readonly #private: KeyObject | undefined;
  readonly #public: KeyObject;

  private constructor(pub: KeyObject, priv: KeyObject | undefined) {
    this.#public = pub;
    this.#private = priv;
    this.publicKeyPem = pub.export({ type: 'spki', format: 'pem' }).toString();
    this.keyId = sha256Hex(pub.export({ type: 'spki', format: 'der' })).slice(0, 16);
  }

  static generate(): AuthorityKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    return new AuthorityKey(publicKey, privateKey);
  }

  /** Loads the PEM private key at `path`, creating it (mode 0600) on first use. */
  static loadOrCreate(path: string): AuthorityKey {
    if (existsSync(path)) {
      const priv = createPrivateKey(readFileSync(path));
      return new AuthorityKey(createPublicKey(priv), priv);
    }
    const key = AuthorityKey.generate();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, key.#private!.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(path.replace(/\.key$/, '') + '.pub', key.publicKeyPem);
    return key;
  }

  /** The verify-only key of the authority of a data dir (`authority.pub`, else derived from `authority.key`). */
  static loadPublic(dataDir: string): AuthorityKey | undefined {
    const pub = `${dataDir}/authority.pub`;
    if (existsSync(pub)) return AuthorityKey.fromPublicPem(readFileSync(pub, 'utf8'));
    const priv = `${dataDir}/authority.key`;
    if (existsSync(priv)) return new AuthorityKey(createPublicKey(createPrivateKey(readFileSync(priv))), undefined);
    return undefined;
  }

  /** A verify-only key from a raw 32-byte ed25519 public key in base64url (or base64). */
  static fromRawPublic(raw: string): AuthorityKey {
    const x = Buffer.from(raw, 'base64').toString('base64url');
    return new AuthorityKey(createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }), undefined);
  }

  /** The key as published: id, raw base64url and PEM. */
  publicInfo(node?: string): AuthorityPublicKey {
    const jwk = this.#public.export({ format: 'jwk' });
    return { keyId: this.keyId, alg: 'ed25519', publicKey: String(jwk.x), publicKeyPem: this.publicKeyPem, ...(node ? { node } : {}) };
  }

  /** A verify-only key (for hosts that trust an authority elsewhere). */
  static fromPublicPem(pem: string): AuthorityKey {
    return new AuthorityKey(createPublicKey(pem), undefined);
  }

  sign(d: UnsignedDecision): Decision {
    if (!this.#private) throw new Error('this authority key can only verify');
    const sig = sign(null, Buffer.from(canonicalJson(d)), this.#private).toString('base64');
    return { ...d, sig };
  }

  /** Signs a journal checkpoint hash (the bytes signed are `"ice-checkpoint:<hash>"`). */
  signCheckpoint(hash: string): string {
    if (!this.#private) throw new Error('this authority key can only verify');
    return sign(null, Buffer.from(`ice-checkpoint:${hash}`), this.#private).toString('base64');
  }

  /** Signs arbitrary text (turn attestations: `ice-turn:<chain>:<seq>:<hash>`). */
  signText(text: string): string {
    if (!this.#private) throw new Error('this authority key can only verify');
    return sign(null, Buffer.from(text), this.#private).toString('base64');
  }

  verifyText(text: string, sig: string): boolean {
    try {
      return verify(null, Buffer.from(text), this.#public, Buffer.from(sig, 'base64'));
    } catch {
      return false;
    }
  }

  verifyCheckpoint(hash: string, sig: string): boolean {
    try {
      return verify(null, Buffer.from(`ice-checkpoint:${hash}`), this.#public, Buffer.from(sig, 'base64'));
    } catch {
      return false;
    }
  }

  /** A stored checkpoint was signed by this key: its key id is this one and the signature verifies. */
  signedCheckpoint(cp: { keyId: string; hash: string; sig: string }): boolean {
    return cp.keyId === this.keyId && this.verifyCheckpoint(cp.hash, cp.sig);
  }

  verify(d: Decision): boolean {
    const { sig, ...rest } = d;
    try {
      return verify(null, Buffer.from(canonicalJson(rest)), this.#public, Buffer.from(sig, 'base64'));
    } catch {
      return false;
    }
  }
}
