"""The governance and evidence page: proposals with their tally, policies, members, the validator sets and
any pending change, four-eyes requests, and recorded equivocation evidence.

Everything comes from the governance queries run through the API backend (docs/CHAINCODE.md §11-14), each
page bounded by PAGE_SIZE_MAX rows. Proposals and requests are numbered 1, 2, 3, ... and never deleted, so
the newest number is found by a galloping search with the one-record query, and "recent" pages go back from
it with the list query's own `start_after` cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chaincode.policy import compute_needed
from core.genesis import ELECTORATE_MEMBERS, ELECTORATE_VALIDATORS, POLICY_FIELDS
from node.api import QueryNotFound
from node.web.site import SITE, Site, get_int, get_limit, get_text, page

ID_MAX = 9_999_999_999_999_999  # the `proposal` and `request` queries' largest id
ROLE_SCAN_ORGS_MAX = 10_000  # organisations read to count a role electorate, at most


@dataclass(frozen=True, slots=True)
class Condition:
    """One threshold an open proposal must meet: its policy's terms (set_policy: also the new terms)."""

    label: str  # the policy's name, or "new terms of <policy>"
    approvers: str  # the electorate whose approvals count
    electorate: int | None  # its organisations now (None: too many to count here)
    approvals: int  # approvals of organisations now in the electorate
    rejections: int
    needed: int | None


@page
async def governance(request: web.Request) -> web.Response:
    site = request.app[SITE]
    limit = get_limit(request, default=20)
    open_after = get_int(request, "open_after")
    proposals_before = get_int(request, "proposals_before", minimum=1)
    requests_before = get_int(request, "requests_before", minimum=1)
    evidence_after = get_text(request, "evidence_after")
    history = site.validator_history()
    members = [record["org"] for record in site.query("members")["items"]]
    policies = {record["name"]: record for record in site.query("policies")["items"]}
    electorates = _Electorates(site, members, sorted({v.org for v in history.current.validators}))
    open_page = site.query("proposals", status="open", start_after=open_after, limit=limit)
    return site.render(
        "governance.html",
        page="governance",
        limit=limit,
        open_proposals=[(p, _tally(p, policies, electorates)) for p in open_page["items"]],
        open_next=open_page["next"],
        recent=list_newest_first(site, "proposals", "proposal", proposals_before, limit),
        policies=list(policies.values()),
        members=members,
        history=history,
        requests_pending=site.query("requests", status="pending", limit=limit),
        requests=list_newest_first(site, "requests", "request", requests_before, limit),
        evidence=site.query("evidence", start_after=evidence_after, limit=limit),
        key_numbers={v.node_key: v.number for e in history.epochs for v in e.validators},
    )


@dataclass(frozen=True, slots=True)
class NewestFirst:
    items: list[dict[str, Any]]
    latest: int  # the newest id (0: none yet)
    older: int | None  # `..._before` for the next page back, None at the oldest


def list_newest_first(site: Site, listing: str, one: str, before: int | None, limit: int) -> NewestFirst:
    latest = find_latest_id(site, one)
    top = latest if before is None else min(latest, before - 1)
    bottom = max(0, top - limit)
    items = [] if top <= 0 else site.query(listing, start_after=bottom, limit=limit)["items"]
    items = [item for item in items if int(item["id"]) <= top]
    items.reverse()
    return NewestFirst(items, latest, bottom + 1 if bottom > 0 else None)


def find_latest_id(site: Site, one: str) -> int:
    """The largest id the one-record query `one` answers: ids are dense from 1, so gallop, then bisect."""

    def exists(number: int) -> bool:
        try:
            site.query(one, **{one: number})
        except QueryNotFound:
            return False
        return True

    low, high = 0, 1  # low exists (0 stands for "none"), high is to be tried
    while high <= ID_MAX and exists(high):
        low, high = high, high * 2
    high = min(high, ID_MAX + 1)  # high does not exist (or is past the largest id)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if exists(middle) else (low, middle)
    return low


class _Electorates:
    """Organisations of each electorate as the chaincode counts them now (chaincode/policy.py)."""

    def __init__(self, site: Site, members: list[str], validator_orgs: list[str]) -> None:
        self._site = site
        self._known: dict[str, set[str] | None] = {
            ELECTORATE_MEMBERS: set(members),
            ELECTORATE_VALIDATORS: set(validator_orgs),
        }

    def get(self, name: str) -> set[str] | None:
        """The organisations of `name`; None for a role with more organisations than we read."""
        if name not in self._known:
            self._known[name] = self._role(name)
        return self._known[name]

    def _role(self, role: str) -> set[str] | None:
        orgs: set[str] = set()
        after = None
        for _ in range(ROLE_SCAN_ORGS_MAX // 1000):
            listing = self._site.query("organisations", start_after=after, limit=1000)
            orgs.update(record["id"] for record in listing["items"] if record["role"] == role)
            after = listing["next"]
            if after is None:
                return orgs
        return None


def _tally(
    proposal: dict[str, Any], policies: dict[str, dict[str, Any]], electorates: _Electorates
) -> list[Condition]:
    """Each condition of an open proposal with its votes counted as settle() counts them (§12.2)."""
    terms = [(name, policies[name]) for name in proposal["policies"] if name in policies]
    if proposal["action"] == "set_policy":
        args = proposal["args"]
        terms.append((f"new terms of {args['policy']}", {name: args[name] for name in POLICY_FIELDS}))
    conditions = []
    for label, policy in terms:
        orgs = electorates.get(policy["approvers"])
        conditions.append(
            Condition(
                label=label,
                approvers=policy["approvers"],
                electorate=None if orgs is None else len(orgs),
                approvals=_count(proposal["approvals"], orgs),
                rejections=_count(proposal["rejections"], orgs),
                needed=None if orgs is None else compute_needed(len(orgs), policy),
            )
        )
    return conditions


def _count(votes: list[dict[str, Any]], electorate: set[str] | None) -> int:
    return len(votes) if electorate is None else sum(1 for vote in votes if vote["org"] in electorate)
