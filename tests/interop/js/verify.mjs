// The verification rules of docs/protocol.md, written from the spec alone: canonical encoding of the few
// messages a light client builds, signing inputs, Ed25519 (Node's crypto), commit certificates, RFC 6962
// inclusion proofs, and the frame envelope.
import crypto from 'node:crypto'
import { decode } from '@msgpack/msgpack'

export const LIGHT = '/stromledger/light/1'
export const KIND = { MSG: 1, REQ: 2, RESP: 3, ERR: 4 }
const PRECOMMIT_DOMAIN = 'stromledger/consensus/precommit/1'
const TAG = { SettledReading: 4, PeriodSeal: 10, Precommit: 32, ErrorReply: 50, LightRequest: 55, LightReply: 56 }

export const hex = (b) => Buffer.from(b).toString('hex')
export const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))
export const sha256 = (...parts) => {
  const h = crypto.createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const equal = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
const num = (v) => (typeof v === 'bigint' ? v : BigInt(v))

// -- canonical msgpack (shortest forms; str for text, bin for bytes) -------------------------------------
function uint (n) {
  n = num(n)
  if (n < 0n) throw new Error('negative ints are not needed here')
  if (n < 128n) return Uint8Array.of(Number(n))
  if (n < 256n) return Uint8Array.of(0xcc, Number(n))
  if (n < 65536n) { const b = Buffer.alloc(3); b[0] = 0xcd; b.writeUInt16BE(Number(n), 1); return b }
  if (n < 4294967296n) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(Number(n), 1); return b }
  const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(n, 1); return b
}
function bin (bytes) {
  const n = bytes.length
  const head = n < 256 ? Uint8Array.of(0xc4, n) : n < 65536 ? Uint8Array.of(0xc5, n >> 8, n & 255) : (() => { const b = Buffer.alloc(5); b[0] = 0xc6; b.writeUInt32BE(n, 1); return b })()
  return Buffer.concat([head, bytes])
}
function str (text) {
  const bytes = Buffer.from(text, 'utf8')
  const n = bytes.length
  const head = n < 32 ? Uint8Array.of(0xa0 | n) : n < 256 ? Uint8Array.of(0xd9, n) : Uint8Array.of(0xda, n >> 8, n & 255)
  return Buffer.concat([head, bytes])
}
function array (items) {
  const n = items.length
  const head = n < 16 ? Uint8Array.of(0x90 | n) : n < 65536 ? Uint8Array.of(0xdc, n >> 8, n & 255) : (() => { const b = Buffer.alloc(5); b[0] = 0xdd; b.writeUInt32BE(n, 1); return b })()
  return Buffer.concat([head, ...items])
}

export const decodeMsg = (bytes) => decode(bytes, { useBigInt64: true })
export const lightRequest = (period, maloIds) => array([uint(TAG.LightRequest), uint(period), array(maloIds.map(str))])
export const precommitBody = (height, round, valueHash, validator) =>
  array([uint(TAG.Precommit), uint(height), uint(round), bin(valueHash), bin(validator)])

export function signingInput (domain, chainId, body) {
  const d = Buffer.from(domain, 'utf8'); const c = Buffer.from(chainId, 'utf8')
  const len = (b) => Uint8Array.of(b.length >> 8, b.length & 255)
  return Buffer.concat([Buffer.from('stromledger\0', 'latin1'), len(d), d, len(c), c, body])
}

const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')
export function ed25519Verify (publicKey, signature, message) {
  const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, publicKey]), format: 'der', type: 'spki' })
  return crypto.verify(null, message, key, signature)
}

// -- frames ------------------------------------------------------------------------------------------------
export function frame (kind, body) {
  const out = Buffer.alloc(4 + 1 + body.length)
  out.writeUInt32BE(1 + body.length, 0); out[4] = kind; Buffer.from(body).copy(out, 5)
  return out
}
export function parseFrame (bytes) {
  const b = Buffer.from(bytes)
  if (b.length < 5) throw new Error(`short frame: ${b.length} bytes`)
  const n = b.readUInt32BE(0)
  if (b.length < 4 + n) throw new Error(`incomplete frame: ${b.length - 4} of ${n} bytes`)
  return { kind: b[4], body: new Uint8Array(b.subarray(5, 4 + n)), rest: b.length - 4 - n }
}

// -- RFC 6962 / 9162 inclusion proof ---------------------------------------------------------------------
export const leafHash = (leaf) => sha256(Uint8Array.of(0), leaf)
export function verifyInclusion (root, leaf, index, size, path) {
  let fn = BigInt(index); let sn = BigInt(size) - 1n
  if (fn > sn) return false
  let r = leafHash(leaf)
  for (const p of path) {
    if (sn === 0n) return false
    if ((fn & 1n) === 1n || fn === sn) {
      r = sha256(Uint8Array.of(1), p, r)
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n }
    } else {
      r = sha256(Uint8Array.of(1), r, p)
    }
    fn >>= 1n; sn >>= 1n
  }
  return sn === 0n && equal(r, root)
}

// -- a LightReply, checked against the genesis ({chain_id, registry_hash, validators}) --------------------
export function verifyLightReply (genesis, period, replyBytes) {
  const reply = decodeMsg(replyBytes)
  if (Number(reply[0]) !== TAG.LightReply) throw new Error(`not a LightReply: tag ${reply[0]}`)
  const [, height, version, sealBytes, cert, size, proofs] = reply
  const [certHeight, round, valueHash, sigs] = cert // a nested message: its fields, no tag
  const validators = genesis.validators.map(unhex)
  const quorum = Math.floor(2 * validators.length / 3) + 1
  const sealHash = sha256(sealBytes)
  if (num(certHeight) !== num(height)) throw new Error('certificate_wrong_height')
  if (!equal(valueHash, sealHash)) throw new Error('certificate_wrong_hash')
  let previous = -1
  for (const [index] of sigs) {
    const i = Number(index)
    if (i >= validators.length || i <= previous) throw new Error('certificate_bad_signers')
    previous = i
  }
  if (sigs.length < quorum) throw new Error('certificate_insufficient_power')
  for (const [index, sig] of sigs) {
    const key = validators[Number(index)]
    const body = precommitBody(certHeight, round, valueHash, key)
    if (!ed25519Verify(key, sig, signingInput(PRECOMMIT_DOMAIN, genesis.chain_id, body))) throw new Error('certificate_bad_signature')
  }
  const seal = decodeMsg(sealBytes)
  const [tag, chainId, registryHash, sealHeight, , , results] = seal
  if (Number(tag) !== TAG.PeriodSeal || chainId !== genesis.chain_id || hex(registryHash) !== genesis.registry_hash) throw new Error('wrong_chain')
  if (num(sealHeight) !== num(height)) throw new Error('wrong_height')
  const result = results.find((r) => num(r[0]) === num(period) && num(r[1]) === num(version))
  if (!result) throw new Error('no_result')
  const [, , meterPoints, , , , , merkleRoot] = result
  if (num(meterPoints) !== num(size)) throw new Error('wrong_size')
  const verified = []; const failed = []
  for (const [maloId, index, leaf, path] of proofs) {
    const settled = decodeMsg(leaf)
    const ok = verifyInclusion(merkleRoot, leaf, index, size, path) && Number(settled[0]) === TAG.SettledReading &&
      num(settled[1]) === num(period) && settled[2] === maloId
    ;(ok ? verified : failed).push(maloId)
  }
  return { height: Number(height), version: Number(version), seal_hash: hex(sealHash), merkle_root: hex(merkleRoot), signers: sigs.map((s) => Number(s[0])), verified, failed, proofs: proofs.map((p) => ({ malo_id: p[0], leaf: p[2] })) }
}

export const errorReply = (body) => {
  const msg = decodeMsg(body)
  return Number(msg[0]) === TAG.ErrorReply ? { reason: msg[1], message: msg[2] } : null
}
