"""Union-find over integer channel ids, carrying the reasons a set is protected."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Protection:
    """Why some channels may not be removed: the op, where it sits, and the reason."""

    op: str
    layer: str
    why: str

    def __str__(self) -> str:
        return f"{self.layer} [{self.op}]: {self.why}"


class ChannelSets:
    """Disjoint sets of channel ids. A set is removed as a whole or not at all.

    Ids are allocated with :meth:`new`; a set can be frozen with a :class:`Protection`, and the
    freeze survives every later union (protection is contagious, never lost).
    """

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._frozen: dict[int, list[int]] = {}  # root -> indices into self.protections
        self.protections: list[Protection] = []

    def __len__(self) -> int:
        return len(self._parent)

    def new(self, n: int) -> np.ndarray:
        start = len(self._parent)
        self._parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra == rb:
            return
        if ra > rb:
            ra, rb = rb, ra
        self._parent[rb] = ra
        moved = self._frozen.pop(rb, None)
        if moved:
            self._frozen.setdefault(ra, []).extend(moved)

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        """Union ``a[i]`` with ``b[i]`` for every i (equal lengths)."""
        if len(a) != len(b):
            raise ValueError(f"cannot couple {len(a)} channels with {len(b)}")
        for x, y in zip(a.tolist(), b.tolist()):
            if x != y:
                self.union(x, y)

    def union_strided(self, ids: np.ndarray, width: int) -> None:
        """Channel j of every consecutive block of ``width`` goes together (equal chunks, paths,
        groups that all stay): a cut then removes the same channels from each block."""
        for j in range(width):
            self.union_all(ids[j::width])

    def union_all(self, ids: np.ndarray) -> None:
        ids = ids.tolist()
        for x in ids[1:]:
            self.union(ids[0], x)

    def freeze(self, ids: np.ndarray, protection: Protection) -> None:
        if len(ids) == 0:
            return
        try:
            index = self.protections.index(protection)
        except ValueError:
            self.protections.append(protection)
            index = len(self.protections) - 1
        for root in {self.find(i) for i in ids.tolist()}:
            reasons = self._frozen.setdefault(root, [])
            if index not in reasons:
                reasons.append(index)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter((self.find(i) for i in ids.tolist()), dtype=np.int64, count=len(ids))

    def is_frozen(self, root: int) -> bool:
        return root in self._frozen

    def reasons(self, root: int) -> list[Protection]:
        return [self.protections[i] for i in self._frozen.get(self.find(root), [])]
