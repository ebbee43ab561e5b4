// A js-libp2p light client of stromledger, written from docs/protocol.md. Prints one JSON line.
//
//   node client.mjs vectors DIR                         check docs/vectors/ by the spec's rules
//   node client.mjs light ADDR PEER_ID SEED_HEX GENESIS_JSON PERIOD MALO_ID...
//                                                       fetch a LightReply and verify it (a registered key)
//   node client.mjs outsider ADDR PEER_ID               an unregistered key: expect ERR unauthorized, then
//                                                       the validator closing the connection
import './polyfill.mjs'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import {
  KIND, LIGHT, decodeMsg, ed25519Verify, errorReply, frame, hex, leafHash, lightRequest, parseFrame, precommitBody, sha256,
  signingInput, unhex, verifyLightReply
} from './verify.mjs'

const REQUEST_TIMEOUT_MS = 5000

async function node (privateKey) {
  return createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

// One request on its own stream: write the REQ frame, half-close, read the one answer frame.
async function request (libp2p, target, payload) {
  const stream = await libp2p.dialProtocol(target, LIGHT, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  await stream.sink([frame(KIND.REQ, payload)])
  const chunks = []
  for await (const chunk of stream.source) chunks.push(chunk.subarray())
  return parseFrame(Buffer.concat(chunks))
}

async function light ([addr, peerId, seedHex, genesisFile, period, ...maloIds]) {
  const genesis = JSON.parse(readFileSync(genesisFile, 'utf8'))
  const libp2p = await node(await generateKeyPairFromSeed('Ed25519', unhex(seedHex)))
  try {
    const answer = await request(libp2p, multiaddr(`${addr}/p2p/${peerId}`), lightRequest(BigInt(period), maloIds))
    if (answer.kind === KIND.ERR) return { error: Buffer.from(answer.body).toString('ascii') }
    const refused = errorReply(answer.body)
    if (refused) return { error_reply: refused }
    const out = verifyLightReply(genesis, BigInt(period), answer.body)
    out.proofs = out.proofs.map((p) => ({ malo_id: p.malo_id, leaf: hex(p.leaf) }))
    return out
  } finally {
    await libp2p.stop()
  }
}

async function outsider ([addr, peerId]) {
  const libp2p = await node(await generateKeyPair('Ed25519'))
  const target = multiaddr(`${addr}/p2p/${peerId}`)
  let openedAt = 0
  const closed = new Promise((resolve) => {
    libp2p.addEventListener('connection:open', () => { openedAt = performance.now() })
    libp2p.addEventListener('connection:close', () => resolve(performance.now()))
  })
  try {
    let answer
    try {
      answer = await request(libp2p, target, lightRequest(1n, ['x']))
    } catch (err) {
      return { error: `${err.name}: ${err.message}` }
    }
    const reason = answer.kind === KIND.ERR ? Buffer.from(answer.body).toString('ascii') : null
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 3000))
    const closedAt = await Promise.race([closed, timeout])
    return { kind: answer.kind, reason, disconnected_ms: closedAt === null ? null : Math.round(closedAt - openedAt) }
  } finally {
    await libp2p.stop()
  }
}

function vectors ([dir]) {
  const load = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8')).vectors
  const checked = {}
  for (const v of load('keys.json')) {
    const raw = unhex(v.public_key)
    const protobuf = Buffer.concat([Buffer.from('08011220', 'hex'), raw])
    const multihash = Buffer.concat([Buffer.from('0024', 'hex'), protobuf])
    const pid = peerIdFromPublicKey(publicKeyFromRaw(raw))
    if (hex(protobuf) !== v.libp2p_public_key || hex(multihash) !== v.peer_id_bytes) throw new Error(`key ${v.label}: protobuf or multihash`)
    if (pid.toString() !== v.peer_id || hex(pid.toMultihash().bytes) !== v.peer_id_bytes) throw new Error(`key ${v.label}: peer id`)
  }
  checked.keys = load('keys.json').length
  for (const v of load('signatures.json')) {
    const input = signingInput(v.domain, v.chain_id, unhex(v.body))
    if (hex(input) !== v.signing_input) throw new Error(`${v.type}: signing input`)
    if (!ed25519Verify(unhex(v.public_key), unhex(v.signature), input)) throw new Error(`${v.type}: signature`)
    if (v.type === 'Precommit') {
      const [, height, round, valueHash, validator] = decodeMsg(unhex(v.body))
      if (hex(precommitBody(height, round, valueHash, validator)) !== v.body) throw new Error('Precommit: canonical body')
    }
  }
  checked.signatures = load('signatures.json').length
  for (const v of load('frames.json')) {
    if (hex(frame(v.kind, unhex(v.body))) !== v.frame) throw new Error(`frame ${v.name}`)
    const parsed = parseFrame(unhex(v.frame))
    if (parsed.kind !== v.kind || hex(parsed.body) !== v.body || parsed.rest !== 0) throw new Error(`parse ${v.name}`)
  }
  checked.frames = load('frames.json').length
  const l = load('light.json')
  const genesis = { chain_id: l.chain_id, registry_hash: l.registry_hash, validators: l.validators }
  if (hex(lightRequest(BigInt(l.period), l.expected.proofs.map((p) => p.malo_id))) !== l.request) throw new Error('LightRequest encoding')
  const good = verifyLightReply(genesis, BigInt(l.period), unhex(l.reply))
  const e = l.expected
  if (good.seal_hash !== e.seal_hash || good.merkle_root !== e.merkle_root || good.height !== e.height) throw new Error('light: seal')
  if (good.failed.length || good.verified.length !== e.proofs.length) throw new Error(`light: proofs ${good.failed}`)
  for (const [i, p] of good.proofs.entries()) {
    if (hex(leafHash(p.leaf)) !== e.proofs[i].leaf_hash) throw new Error(`light: leaf hash ${p.malo_id}`)
  }
  const bad = verifyLightReply(genesis, BigInt(l.period), unhex(l.tampered_reply))
  if (bad.failed.join() !== l.tampered_fails.malo_id) throw new Error('light: the tampered reply verified')
  checked.light = { verified: good.verified.length, tampered_failed: bad.failed }
  checked.reply_sha256 = hex(sha256(unhex(l.reply))).slice(0, 16)
  return { ok: true, checked }
}

async function main () {
  const [mode, ...args] = process.argv.slice(2)
  const run = { light, outsider, vectors }[mode]
  if (!run) throw new Error(`unknown mode ${mode}`)
  const out = await run(args)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().then(() => process.exit(0), (err) => {
  process.stdout.write(JSON.stringify({ error: `${err.name}: ${err.message}` }) + '\n')
  process.exit(1)
})
