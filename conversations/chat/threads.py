"""A conversation's message tree, walked in Python: branches, paths and siblings from one read.

Pure functions of `Pairs` (the (id, parent_id) of every message, oldest first, as
`selectors.thread_pairs` reads them): no query here, so a thread question costs the one read.
"""

from __future__ import annotations

from collections.abc import Mapping

# A conversation's messages as (id, parent_id), oldest id first: the one read every thread question needs.
Pairs = list[tuple[int, int | None]]
# Message ids by their parent id (None: the first messages), oldest first: the siblings of each message.
Siblings = Mapping[int | None, list[int]]


def thread_leaf_id(pairs: Pairs, current_id: int | None) -> int | None:
    """The leaf of the active branch: the conversation's current message, else its newest one."""
    if current_id is not None:
        return current_id
    return pairs[-1][0] if pairs else None


def thread_path_ids(pairs: Pairs, leaf_id: int | None) -> list[int]:
    """The ids from the thread's first message down to `leaf_id`, in order (empty for no leaf)."""
    parents = dict(pairs)
    path: list[int] = []
    node = leaf_id
    while node is not None and len(path) <= len(parents):  # the bound only guards against a corrupt cycle
        path.append(node)
        node = parents.get(node)
    path.reverse()
    return path


def thread_siblings(pairs: Pairs) -> dict[int | None, list[int]]:
    """Children ids by parent id, oldest first (the siblings of every message, from the same read)."""
    children: dict[int | None, list[int]] = {}
    for message_id, parent_id in pairs:
        children.setdefault(parent_id, []).append(message_id)
    return children


def thread_newest_leaf(pairs: Pairs, message_id: int) -> int:
    """The leaf reached from `message_id` by taking the newest child at each step (the latest version)."""
    children = thread_siblings(pairs)
    node = message_id
    while children.get(node):
        node = children[node][-1]
    return node
