"""The event every benchmark sends: a production flag change, numbered so each is its own."""

from __future__ import annotations


def event(i: int) -> dict[str, object]:
    return {
        "_id": f"bench-{i:08d}",
        "date": 1_700_000_000_000 + i,
        "kind": "flag",
        "name": "New checkout",
        "accesses": [
            {"action": "updateOn", "resource": "proj/web:env/production:flag/new-checkout"}
        ],
        "titleVerb": "turned on the flag",
        "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
        "comment": "Rolling out to everyone",
    }
