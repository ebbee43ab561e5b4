"""`stromledger registry`: sign and submit a registry change described in TOML, approve a committee change
and submit it with its approvals, and show the registry version in effect in a period (docs/registry.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from stromledger.cascade import Reason, Rejection, make_batch
from stromledger.cascade.changes import (
    approved_shape, change_shape, change_signature, change_verdict, earliest_effective, judge_change,
    small_committee_warning,
)
from stromledger.registry import (
    KIND_BY_NAME, METER_POINT_ADDED, NETWORK, CommitteeChange, MarketChange, MeterOperatorChange, Registry,
    RegistryChange, chain_id, committee_change, registry_at, scopes, sign_change, view, with_changes,
)
from stromledger.registry.approvals import Approval, add_approvals, approve, approved_body
from stromledger.registry.changes import change_json, group_pool, is_approved
from stromledger.registry.market import (
    MARKET_KIND_BY_NAME, OPERATOR_CHANGE, market_change, operator_change,
)
from stromledger.crypto import verify

from .submit import InputError, open_home, parse_period, send_to_peers

CLIENT_LISTEN = "/ip4/127.0.0.1/tcp/0"
CHANGE_FIELDS = {
    "switch": {"balancing_group": True, "supplier": False},
    "retire_meter_point": {},
    "rotate_key": {"meter_key": True},
    "add_meter_point": {"grid_area": True, "balancing_group": True, "supplier": False, "meter_key": True,
                        "meter_operator": True, "point_kind": True, "source": True, "max_power_w": True},
}

CHANGE_HELP = """\
Sign a registry change with this node's key and submit it to a validator (or, with --dry-run, only check
it). The grid operator of the meter point's area signs additions, retirements and supplier switches (a
validator home of that area); the meter point's meter operator signs key rotations (its node home). The
change takes effect from the start of its effective period, which must lie at least two periods after the
next seal (docs/registry.md).

FILE.toml (one change; unknown keys are refused):
  kind             switch | retire_meter_point | rotate_key | add_meter_point
  malo_id          the market location (11 digits)
  effective        the first period it applies to: its UTC start (2026-11-21T10:30:00Z), ISO interval
                   or index
  balancing_group  switch, add_meter_point: the group's EIC from then on
  supplier         switch, add_meter_point (optional): the supplier's 13-digit market-partner id
  meter_key        rotate_key, add_meter_point: the meter's new Ed25519 public key (64 hex digits)
  grid_area, meter_operator, point_kind (consumer|producer|prosumer), source, max_power_w:
                   add_meter_point only

Example:
  kind = "switch"
  malo_id = "41373559241"
  effective = "2026-11-21T11:00:00Z"
  balancing_group = "11YEXPBG------26"

A committee change (kind = "committee") is not one signer's: more than 2/3 of the committee in office must
approve it. Each member runs `stromledger registry approve --home ITS_HOME FILE.toml --out NAME.toml`; then
anyone runs `stromledger registry change --home DIR FILE.toml --approvals A.toml B.toml ...`, which checks
the approvals (members, signatures, quorum) and submits the change with them:
  kind = "committee"
  scope = "11YDEVAREA2----V"     # an area EIC, or "network"
  effective = 359257002          # the first height (= period) of the new committee
  members = ["validator-1", "validator-2", "validator-3", "validator-5"]   # proposer order

Balancing groups and market-partner ids are approved the same way by more than 2/3 of the NETWORK
committee (validator homes); a meter operator change (WiM) by both the meter point's current meter
operator (its home) and the grid operator of its area (a validator home of that area):
  kind = "open_group"         balancing_group (Y-EIC), name, operator_key (64 hex), market_partner_id
  kind = "close_group"        balancing_group
  kind = "market_partner_id"  party (the EIC of a balancing group or grid area), market_partner_id
  kind = "meter_operator"     malo_id, meter_operator (its genesis name), meter_key (optional, 64 hex)
  (each with `effective`; a market change is submitted to every chain, each judges it)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="registry changes: sign and submit one, show the registry of a period",
                       description="The living registry: signed changes (supplier switches, new and retired "
                                   "meter points, key rotations) effective from a period. See docs/registry.md.")
    rs = p.add_subparsers(dest="registry_command", metavar="ACTION")
    c = rs.add_parser("change", help="sign a change described in TOML and submit it", description=CHANGE_HELP,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--home", required=True, help="the signer's node home (its key signs the change)")
    c.add_argument("file", metavar="FILE.toml", help="the change (see above)")
    c.add_argument("--dry-run", action="store_true", help="check the change, print it, send nothing")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a validator (default 10)")
    c.add_argument("--approvals", nargs="+", default=[], metavar="FILE",
                   help="an approved change (committee, market, meter_operator): its approvals (from "
                        "`registry approve`)")
    c.set_defaults(func=_change)
    a = rs.add_parser("approve", help="approve a committee, market or meter operator change with this home's key",
                      description="Approve the change FILE.toml describes (kind = \"committee\", \"open_group\", "
                                  "\"close_group\", \"market_partner_id\" or \"meter_operator\", see `registry "
                                  "change --help`) with this home's key; the approval is written to --out for "
                                  "`registry change --approvals`.")
    a.add_argument("--home", required=True, help="an approver's home (a committee member; for meter_operator "
                                                 "the current meter operator or the area's grid operator)")
    a.add_argument("file", metavar="FILE.toml", help="the change")
    a.add_argument("--out", required=True, help="where to write the approval (TOML)")
    a.set_defaults(func=_approve)
    s = rs.add_parser("show", help="the registry version in effect in a period, with the changes behind it")
    s.add_argument("--home", required=True, help="a node home (a validator home also knows the committed changes)")
    s.add_argument("--at", metavar="PERIOD", help="the period (UTC start, ISO interval or index; default: now)")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# -- reading a change --------------------------------------------------------------------------------------


def read_change(path: str | Path, registry: Registry, key) -> RegistryChange:
    """The change FILE.toml describes, signed with `key`; InputError with the reason if the file is wrong."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: {e}") from None
    kind = doc.get("kind")
    if kind not in CHANGE_FIELDS:
        raise InputError(f"{path}: kind {kind!r} is not one of {', '.join(CHANGE_FIELDS)}")
    fields = CHANGE_FIELDS[kind]
    unknown = sorted(set(doc) - {"kind", "malo_id", "effective"} - set(fields))
    if unknown:
        raise InputError(f"{path}: a {kind} change has no {', '.join(unknown)}")
    missing = [f for f in ("malo_id", "effective", *(f for f, needed in fields.items() if needed)) if f not in doc]
    if missing:
        raise InputError(f"{path}: a {kind} change needs {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name in fields:
        if name in doc:
            want = int if name == "max_power_w" else str
            if type(doc[name]) is not want:
                raise InputError(f"{path}: {name} is a{'n integer' if want is int else ' string'}")
            values[name] = doc[name]
    if "meter_key" in values:
        try:
            values["meter_key"] = bytes.fromhex(values["meter_key"])
        except ValueError:
            raise InputError(f"{path}: meter_key is 64 hex digits (an Ed25519 public key)") from None
    if type(doc["malo_id"]) is not str:
        raise InputError(f"{path}: malo_id is a string of 11 digits")
    effective = parse_period(str(doc["effective"]), registry)
    return sign_change(key, registry.root_chain_id, KIND_BY_NAME[kind], doc["malo_id"], effective, **values)


COMMITTEE_FIELDS = ("kind", "scope", "effective", "members")
# kind -> {field: required} of the market kinds (each also has `effective`)
MARKET_FIELDS = {
    "open_group": {"balancing_group": True, "name": True, "operator_key": True, "market_partner_id": True},
    "close_group": {"balancing_group": True},
    "market_partner_id": {"party": True, "market_partner_id": True},
    OPERATOR_CHANGE: {"malo_id": True, "meter_operator": True, "meter_key": False},
}
APPROVED_KINDS = ("committee", *MARKET_FIELDS)


def _toml(path: str | Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: {e}") from None


def is_approved_file(path: str | Path) -> bool:
    """Does FILE.toml describe a change that approvals make (committee, market, meter operator)?"""
    try:
        return _toml(path).get("kind") in APPROVED_KINDS
    except InputError:
        return False


def read_approved_change(path: str | Path, registry: Registry):
    """The approved change FILE.toml describes, without approvals; InputError with the reason if wrong."""
    doc = _toml(path)
    if doc.get("kind") == "committee":
        return read_committee_change(path, registry)
    kind = doc.get("kind")
    if kind not in MARKET_FIELDS:
        raise InputError(f"{path}: kind {kind!r} is not one of {', '.join(APPROVED_KINDS)}")
    fields = MARKET_FIELDS[kind]
    unknown = sorted(set(doc) - {"kind", "effective"} - set(fields))
    if unknown:
        raise InputError(f"{path}: a {kind} change has no {', '.join(unknown)}")
    missing = [f for f in ("effective", *(f for f, needed in fields.items() if needed)) if f not in doc]
    if missing:
        raise InputError(f"{path}: a {kind} change needs {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name in fields:
        if name in doc:
            if type(doc[name]) is not str:
                raise InputError(f"{path}: {name} is a string")
            values[name] = doc[name]
    for name in ("operator_key", "meter_key"):
        if name in values:
            try:
                values[name] = bytes.fromhex(values[name])
            except ValueError:
                raise InputError(f"{path}: {name} is 64 hex digits (an Ed25519 public key)") from None
    effective = parse_period(str(doc["effective"]), registry)
    if kind == OPERATOR_CHANGE:
        return operator_change(values["malo_id"], effective, values["meter_operator"], values.get("meter_key", b""))
    party = values.pop("balancing_group", None) or values.pop("party")
    return market_change(MARKET_KIND_BY_NAME[kind], effective, party, **values)


def read_committee_change(path: str | Path, registry: Registry) -> CommitteeChange:
    """The committee change FILE.toml describes, without approvals; InputError with the reason if wrong."""
    doc = _toml(path)
    unknown = sorted(set(doc) - set(COMMITTEE_FIELDS))
    if unknown:
        raise InputError(f"{path}: a committee change has no {', '.join(unknown)}")
    missing = [f for f in COMMITTEE_FIELDS if f not in doc]
    if missing:
        raise InputError(f"{path}: a committee change needs {', '.join(missing)}")
    if doc["scope"] not in scopes(registry):
        raise InputError(f"{path}: scope {doc['scope']!r} is neither {NETWORK!r} nor a grid area of the genesis")
    members = doc["members"]
    if type(members) is not list or not members or any(type(m) is not str for m in members):
        raise InputError(f"{path}: members is a list of validator names (in proposer order)")
    return committee_change(doc["scope"], parse_period(str(doc["effective"]), registry), members)


def approval_chain_id(registry: Registry, change) -> str:
    """The chain id approvals of `change` sign under: a committee change its scope's chain's; a market or
    meter operator change the genesis's (the same change is committed by every chain it concerns)."""
    return chain_id(registry, change.scope) if isinstance(change, CommitteeChange) else registry.root_chain_id


def read_approval(path: str | Path, registry: Registry, change) -> Approval:
    """An approval file of `change` (InputError if it is unreadable, or approves something else)."""
    try:
        doc = _toml(path)
        a = Approval(bytes.fromhex(doc["signer"]), bytes.fromhex(doc["sig"]))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not an approval file ({e})") from None
    if len(a.signer) != 32 or len(a.sig) != 64 or not verify(
            a.signer, a.sig, type(change).DOMAIN, approval_chain_id(registry, change), approved_body(change)):
        raise InputError(f"{path}: does not approve this change ({change.describe()})")
    return a


def approver_name(registry: Registry, key: bytes) -> str | None:
    """A validator's or meter operator's name for its key (who may approve something), else None."""
    return next((x.name for x in [*registry.validators, *registry.meter_operators.values()]
                 if x.public_key == key), None)


def _home_and_change(args: argparse.Namespace, read) -> tuple[Any, Any] | None:
    """(the home's context, `read(ctx)`), or None after saying on stderr why not (exit status 2)."""
    ctx = open_home(args.home)
    if ctx is None:
        return None
    try:
        return ctx, read(ctx)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def _approve(args: argparse.Namespace) -> int:
    got = _home_and_change(args, lambda ctx: read_approved_change(args.file, ctx.registry))
    if got is None:
        return 2
    ctx, change = got
    reg = ctx.registry
    me = approver_name(reg, ctx.key.public)
    if me is None or (not isinstance(change, MeterOperatorChange) and
                      me not in {v.name for v in reg.validators}):
        print("error: this home's key is no validator of the genesis (nor, for a meter_operator change, a meter "
              "operator): it approves nothing", file=sys.stderr)
        return 2
    a = approve(ctx.key, type(change).DOMAIN, approval_chain_id(reg, change), change)
    Path(args.out).write_text(f"# {me} approves: {change.describe()}\n"
                              f"signer = \"{a.signer.hex()}\"\nsig = \"{a.sig.hex()}\"\n", encoding="utf-8")
    print(f"{me} approved {change.describe()}: written to {args.out}")
    return 0


def committed_history(home: Path, registry: Registry) -> tuple[RegistryChange, ...]:
    """The registry changes committed on the area chains whose stores this home holds (a validator home)."""
    from stromledger.export.build import ExportError
    from stromledger.export.committed import registry_history

    from .export import _open_store

    found = []
    for area in registry.grid_areas:
        if not (home / "data" / "chains" / f"{area}.sqlite3").exists():
            continue
        try:
            with _open_store(home, area) as store:
                found += registry_history(store)
        except (ExportError, OSError):
            continue
    # a market change is committed by every chain: once here
    return with_changes((), {c.digest(): c for c in found}.values())


def chain_of_change(registry: Registry, history: tuple[RegistryChange, ...], c: RegistryChange) -> str:
    """The area whose chain settles a change (of a genesis meter point, or of one added by `history`); a
    committee change: its scope."""
    if isinstance(c, CommitteeChange):
        return c.scope
    if isinstance(c, MarketChange):
        return ""  # every chain: judged here against the whole genesis
    if not isinstance(c, MeterOperatorChange) and c.kind == METER_POINT_ADDED:
        return c.grid_area
    mp = registry.meter_points.get(c.malo_id)
    if mp is not None:
        return mp.grid_area
    return next((x.grid_area for x in history if isinstance(x, RegistryChange) and x.malo_id == c.malo_id
                 and x.kind == METER_POINT_ADDED), "")


def check_change(registry: Registry, history: tuple[RegistryChange, ...], c: RegistryChange,
                 now_period: int) -> Rejection | None:
    """What a validator would say now: form, signature, and (against the history this home knows) timing,
    signer and conflicts."""
    scope = chain_of_change(registry, history, c)
    chain = view(registry, scope) if scope in scopes(registry) else registry
    own = tuple(x for x in history if chain_of_change(registry, history, x) == scope) if scope else \
        tuple(x for x in history if not isinstance(x, CommitteeChange))  # a market change: the whole genesis
    digests = frozenset(x.digest() for x in own)
    if is_approved(c):
        return approved_shape(chain, c) or judge_change(chain, own, c, now_period - 1, {}, digests)
    why = change_shape(chain, c) or change_signature(chain, c)
    if why is None:
        why = change_verdict(chain, history, c, now_period - 1, {}, digests)
    return why


def _read_any_change(args: argparse.Namespace, ctx):
    """The change FILE.toml describes: an approved change with the approval files, else signed by the home."""
    reg = ctx.registry
    if is_approved_file(args.file):
        change = read_approved_change(args.file, reg)
        return add_approvals(change, [read_approval(p, reg, change) for p in args.approvals])
    if args.approvals:
        raise InputError("--approvals are for an approved change (kind = " + ", ".join(APPROVED_KINDS) + ")")
    return read_change(args.file, reg, ctx.key)


def _change(args: argparse.Namespace) -> int:
    got = _home_and_change(args, lambda ctx: _read_any_change(args, ctx))
    if got is None:
        return 2
    ctx, change = got
    reg = ctx.registry
    approved = is_approved(change)
    now = int(time.time()) // reg.period_seconds
    why = check_change(reg, committed_history(Path(args.home), reg), change, now)
    if approved:
        print(f"{change.describe()}, {len(change.approvals)} approval(s), digest {change.digest().hex()[:16]}")
        warning = small_committee_warning(change) if isinstance(change, CommitteeChange) else None
        if warning:
            print(f"warning: {warning}")
    else:
        print(f"{change.describe()}, signed by {ctx.key.public.hex()[:16]}, digest {change.digest().hex()[:16]}")
    if why is not None:
        hint = f" (now period {now}: the earliest effective period is {earliest_effective(now - 1)})" \
            if why.reason == Reason.CHANGE_TOO_LATE else ""
        print(f"REFUSED: {why}{hint}")
        return 1
    if args.dry_run:
        print("ok: the change checks out (dry run: nothing sent)")
        return 0
    return _submit(args, ctx, change)


def _submit(args: argparse.Namespace, ctx, change) -> int:
    if isinstance(change, RegistryChange):
        data = make_batch(ctx.key, ctx.registry.chain_id, changes=[change]).encode()
    else:  # an approved change: its approvals are what count, the batch only carries it
        data = make_batch(ctx.key, ctx.registry.chain_id, approved=[change]).encode()
    # the signer's node (a validator, a meter-point node) usually runs from this home: a port of our own
    return send_to_peers(args.home, ctx, [(str(args.file), data)], args.timeout, listen=CLIENT_LISTEN)


# -- showing the registry of a period ----------------------------------------------------------------------


def registry_report(registry: Registry, history: tuple[RegistryChange, ...], period: int) -> dict:
    """The registry version in effect in `period` under `history`, with the changes behind it and after it."""
    at = registry_at(registry, period, tuple(c for c in history if not isinstance(c, CommitteeChange)))
    changed = sorted({c.malo_id for c in history if isinstance(c, (RegistryChange, MeterOperatorChange))})
    parties = sorted({c.party for c in history if isinstance(c, MarketChange)})
    # what each area chain's seals name: its view plus its own changes and the market changes (every chain
    # commits those; docs/registry.md)
    areas = {area: registry_at(view(registry, area), period, tuple(
        c for c in history if chain_of_change(registry, history, c) in (area, ""))).version.hex()
        for area in registry.grid_areas}
    return {
        "period": period,
        "genesis_hash": registry.hash.hex(),
        "version": at.version.hex(),
        "area_versions": areas,
        "meter_points": len(at.meter_points),
        # each chain's committee in the period: the genesis', or as committee changes made it
        "committees": {scope: [v.name for v in registry_at(view(registry, scope), period, tuple(
            c for c in history if isinstance(c, CommitteeChange) and c.scope == scope)).validators]
            for scope in scopes(registry)},
        "in_effect": [change_json(c) for c in history if c.effective_period <= period],
        "scheduled": [change_json(c) for c in history if c.effective_period > period],
        "changed_meter_points": [
            {"malo_id": m, "status": "retired" if m in at.retired else
             ("not yet added" if m not in at.meter_points else "registered"),
             **({"grid_area": at.meter_points[m].grid_area, "balancing_group": at.group_of(m, period),
                 "supplier": at.supplier_of(m, period), "meter_key": at.meter_points[m].meter_key.hex(),
                 "meter_operator": at.meter_points[m].meter_operator}
                if m in at.meter_points else {})}
            for m in changed],
        "changed_parties": [_party_json(at, p) for p in parties],
    }


def _party_json(at: Registry, party: str) -> dict:
    """A balancing group or grid area a market change names, as the registry version `at` has it."""
    x = at.grid_areas.get(party) or group_pool(at).get(party)
    if x is None:
        return {"party": party, "status": "closed" if party in at.closed_groups else "not yet open"}
    return {"party": party, "status": "grid area" if party in at.grid_areas else "open", "name": x.name,
            "market_partner_id": x.market_partner_id}


def _show(args: argparse.Namespace) -> int:
    ctx = open_home(args.home)
    if ctx is None:
        return 2
    reg = ctx.registry
    try:
        period = parse_period(args.at, reg) if args.at else int(time.time()) // reg.period_seconds
    except InputError as e:
        print(f"--at: {e}", file=sys.stderr)
        return 2
    history = committed_history(Path(args.home), reg)
    report = registry_report(reg, history, period)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    print(f"period {period}: registry version {report['version'][:16]} (genesis {report['genesis_hash'][:16]}), "
          f"{report['meter_points']} meter points; the area chains' seals name " +
          ", ".join(f"{a} {v[:16]}" for a, v in report["area_versions"].items()))
    known = "the committed changes of the area chains in this home" if any(
        (Path(args.home) / "data" / "chains").glob("*.sqlite3")) else "the genesis only (no area chain store here)"
    print(f"from {known}: {len(report['in_effect'])} change(s) in effect, {len(report['scheduled'])} scheduled")
    for label, items in (("in effect", report["in_effect"]), ("scheduled", report["scheduled"])):
        for c in items:
            what = c.get("malo_id") or c.get("party") or c.get("scope", "")
            target = c.get("balancing_group") or c.get("meter_operator") or c.get("market_partner_id") or \
                ", ".join(c.get("members", ()))
            print(f"  {label:9}  {c['kind']:18} {what}  from period {c['effective_period']}"
                  f"{'  -> ' + target if target else ''}")
    for scope, names in report["committees"].items():
        print(f"  committee of {scope}: {', '.join(names)}")
    for m in report["changed_meter_points"]:
        print(f"  {m['malo_id']}: {m['status']}" + (f", {m['grid_area']} / {m['balancing_group']}, metered by "
                                                     f"{m['meter_operator']}" if "grid_area" in m else ""))
    for x in report["changed_parties"]:
        print(f"  {x['party']}: {x['status']}" + (f", {x['name']}, market-partner id {x['market_partner_id']}"
                                                   if "name" in x else ""))
    return 0

