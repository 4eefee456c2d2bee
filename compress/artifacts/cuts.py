"""The cut record: which channels of one layer dimension survive a cut.

A plan (``compress.prune.plan``) is a list of :class:`Cut`; surgery replays them on a freshly built model
(``compress.prune.surgery``), the proof zeroes what they remove (``compress.prune.verify``), and the saved
folder keeps them (``compress.json``'s ``cuts``, ``plan.json``). :meth:`Cut.to_json` writes the dict every
earlier version wrote, key for key and in the same order
(``{"name", "role", "dim", "size", "keep"}``, plus ``"consumes": true`` only where it is set), and
:meth:`Cut.from_json` reads it back, refusing a record that is not one.

Roles: ``in``/``out`` of convs and linears, ``chan`` of per-channel layers (BN, GroupNorm, LayerNorm,
PReLU), a layer's own roles (attention's ``heads``, a split's ``split``), ``param`` for a bare parameter or
buffer sliced along ``dim`` (``consumes``: a functional conv/linear's input dim, which the proof zeroes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from compress.errors import CheckpointError

KEYS = ("name", "role", "dim", "size", "keep")


@dataclass(frozen=True)
class Cut:
    name: str  # the layer (or, for role "param", the parameter) in the model's own dotted names
    role: str
    dim: int  # the axis of the parameters the role slices
    size: int  # the width before the cut
    keep: tuple[int, ...]  # the surviving indices, ascending
    consumes: bool = False

    @property
    def removed(self) -> list[int]:
        """The indices the cut removes, ascending."""
        kept = set(self.keep)
        return [i for i in range(self.size) if i not in kept]

    def then(self, later: "Cut") -> "Cut":
        """This cut followed by ``later`` (made on the already cut layer), as one cut of the original width."""
        if later.size != len(self.keep) or (later.name, later.role) != (self.name, self.role):
            raise ValueError(f"{later.name} ({later.role}) of {later.size} channels does not follow a cut keeping "
                             f"{len(self.keep)} of {self.name} ({self.role})")
        return Cut(self.name, self.role, self.dim, self.size, tuple(self.keep[i] for i in later.keep), self.consumes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role, "dim": self.dim, "size": self.size,
                               "keep": list(self.keep)}
        if self.consumes:
            out["consumes"] = True
        return out

    @classmethod
    def from_json(cls, data: Any) -> "Cut":
        """A cut from its JSON dict; anything else is a :class:`CheckpointError` naming what is wrong."""
        if not isinstance(data, dict) or set(data) - {*KEYS, "consumes"} or not set(KEYS) <= set(data):
            raise CheckpointError(f"malformed cut record {str(data)[:80]!r}",
                                  f"a cut has the keys {', '.join(KEYS)} (and consumes); the folder was modified")
        keep, size, dim = data["keep"], data["size"], data["dim"]
        ints = isinstance(keep, list) and all(type(i) is int for i in keep) and type(size) is int and type(dim) is int
        if not (ints and isinstance(data["name"], str) and isinstance(data["role"], str)
                and all(0 <= i < size for i in keep) and keep == sorted(set(keep))):
            raise CheckpointError(f"malformed cut record for {data.get('name')!r} ({data.get('role')})",
                                  "keep must be ascending indices below size; the folder was modified")
        return cls(data["name"], data["role"], dim, size, tuple(keep), data.get("consumes", False) is True)


def cuts_to_json(cuts: Iterable[Cut]) -> list[dict[str, Any]]:
    return [c.to_json() for c in cuts]


def cuts_from_json(data: Any) -> list[Cut]:
    if not isinstance(data, list):
        raise CheckpointError("the cut record is not a list", "the folder was modified after it was written")
    return [Cut.from_json(d) for d in data]
