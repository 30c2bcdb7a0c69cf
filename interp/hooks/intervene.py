"""Replace an activation with `f(activation)` at chosen positions, for a pass or a generation.

Positions are absolute: each hook counts the positions it has seen since the context opened, so
one prefill followed by one-token KV-cached steps sees positions 0..T-1, then T, T+1, … . An edit
made at step t lives on in the cached keys and values of step t, exactly as in a full recompute
where the edit is applied at every position — nothing is recomputed or lost at step t+1.
Open one context per sequence (or per batch of aligned sequences).

Batched generation of rows of different lengths (`interp.models.generate.generate_batch`) opens
one `intervene_rows` context instead: each row has its own interventions, its own positions
(the generator says where each row is before every pass) and its own strength; edits that know
how to stack (`AddVector`, steering's SAE-latent editor) run once over all rows that share them.
An edit stacks when it has a `stack_key` (hashable; None: it does not) and a `stack(fns)` that
returns one callable over the rows of `fns` (equal keys) stacked in order, row i edited exactly as
fns[i] alone; other edits run once per distinct callable.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from interp.hooks.points import decoder_layers, first, parse_hook, replace_first

PositionMask = Callable[[torch.Tensor], torch.Tensor]  # (T,) absolute positions → (T,) bool


def all_positions() -> PositionMask:
    return lambda pos: torch.ones_like(pos, dtype=torch.bool)


def from_position(start: int) -> PositionMask:
    """Positions `start` and later (e.g. the first generated token and on)."""
    return lambda pos: pos >= start


def modality_positions(modality: list[str], keep: str = "speech",
                       beyond: str = "speech") -> PositionMask:
    """Positions whose modality is `keep` (or one of several joined by '+', e.g. 'text+speech');
    positions past the list (generated) count as `beyond`."""
    kept = set(keep.split("+"))
    table = torch.tensor([m in kept for m in modality], dtype=torch.bool)

    def mask(pos: torch.Tensor) -> torch.Tensor:
        inside = pos < len(table)
        out = torch.full_like(pos, beyond in kept, dtype=torch.bool)
        out[inside] = table[pos[inside].cpu()].to(pos.device)
        return out

    return mask


@dataclass
class Intervention:
    """At `hook`, replace the activation x (B, T, D) by fn(x) where `positions` says so."""

    hook: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    positions: PositionMask = field(default_factory=all_positions)
    seen: int = 0  # positions passed so far in this context

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(self.seen, self.seen + x.shape[1], device=x.device)
        self.seen += x.shape[1]
        mask = self.positions(pos)
        if not mask.any():
            return x
        return torch.where(mask[None, :, None], self.fn(x).to(x.dtype), x)


def _attach(layer: nn.Module, kind: str, iv: Intervention | RowSlot) -> list:
    if kind == "hook_resid_pre":
        def pre(_m, args, kwargs):
            if args:
                return (iv.apply(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": iv.apply(kwargs["hidden_states"])}
        return [layer.register_forward_pre_hook(pre, with_kwargs=True)]
    if kind == "hook_resid_mid":
        # resid_mid = resid_pre + attn_out: edit it by adding (f(mid) - mid) to attn_out, so the
        # residual stream and the MLP both see the edited value.
        state: dict[str, torch.Tensor] = {}

        def keep_pre(_m, args, kwargs):
            state["pre"] = args[0] if args else kwargs["hidden_states"]

        def edit_attn(_m, _args, out):
            attn = first(out)
            mid = state.pop("pre") + attn
            return replace_first(out, attn + (iv.apply(mid) - mid))

        return [layer.register_forward_pre_hook(keep_pre, with_kwargs=True),
                layer.self_attn.register_forward_hook(edit_attn)]
    module = {"hook_resid_post": layer, "hook_attn_out": layer.self_attn,
              "hook_mlp_out": layer.mlp}[kind]
    return [module.register_forward_hook(
        lambda _m, _args, out: replace_first(out, iv.apply(first(out))))]


@contextmanager
def intervene(model: nn.Module, interventions: Intervention | list[Intervention]
              ) -> Iterator[list[Intervention]]:
    """Apply the interventions to every forward pass of `model` inside the block."""
    ivs = [interventions] if isinstance(interventions, Intervention) else list(interventions)
    layers = decoder_layers(model)
    handles = []
    try:
        for iv in ivs:
            layer, kind = parse_hook(iv.hook, len(layers))
            iv.seen = 0
            handles += _attach(layers[layer], kind, iv)
        yield ivs
    finally:
        for h in handles:
            h.remove()


class AddVector:
    """x ↦ x + vector (a direction edit); rows with vectors of one shape stack into one add."""

    def __init__(self, vector: torch.Tensor):
        self.vector = vector

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.vector.to(x.device, x.dtype)

    @property
    def stack_key(self) -> Hashable:
        return ("add", tuple(self.vector.shape))

    def stack(self, fns: Sequence[AddVector]) -> Callable[[torch.Tensor], torch.Tensor]:
        """One edit over n rows (n, T, D): row i gets fns[i]'s vector, exactly as alone."""
        vecs = torch.stack([f.vector for f in fns])  # (n, D)
        return lambda x: x + vecs.to(x.device, x.dtype)[:, None]


class ClampProjection:
    """x ↦ x + max(0, level − x·u)·u for a unit direction u: each position's component along u
    is raised to at least `level`, never lowered (a direction's clamp, as the `clamp` mode does
    to SAE latents: positions that already carry the concept are left alone). Rows with
    directions of one shape stack into one edit."""

    def __init__(self, unit: torch.Tensor, level: float):
        self.unit, self.level = unit, float(level)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        u = self.unit.to(x.device, torch.float32)
        short = (self.level - x.float() @ u).clamp_min(0)  # (..., T)
        return x + (short[..., None] * u).to(x.dtype)

    @property
    def stack_key(self) -> Hashable:
        return ("clamp_projection", tuple(self.unit.shape))

    def stack(self, fns: Sequence[ClampProjection]) -> Callable[[torch.Tensor], torch.Tensor]:
        """One edit over n rows (n, T, D): row i clamped as fns[i] alone."""
        units = torch.stack([f.unit for f in fns]).float()  # (n, D)
        levels = torch.tensor([f.level for f in fns])

        def clamp(x: torch.Tensor) -> torch.Tensor:
            u, lv = units.to(x.device), levels.to(x.device)
            short = (lv[:, None] - torch.einsum("ntd,nd->nt", x.float(), u)).clamp_min(0)
            return x + (short[..., None] * u[:, None]).to(x.dtype)

        return clamp


class KeepNorm:
    """fn, then each position rescaled to the norm it had before: x ↦ fn(x) · ‖x‖ / ‖fn(x)‖
    (norm-preserving steering). The edit turns the residual instead of growing it, so a large
    strength rotates toward the concept rather than pushing the residual past any norm the next
    layers saw in training. Stacks wherever `fn` stacks."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _keep_norm(x, self.fn(x))

    @property
    def stack_key(self) -> Hashable | None:
        key = getattr(self.fn, "stack_key", None)
        return None if key is None else ("keep_norm", key)

    def stack(self, fns: Sequence[KeepNorm]) -> Callable[[torch.Tensor], torch.Tensor]:
        inner = self.fn.stack([f.fn for f in fns])  # type: ignore[attr-defined]
        return lambda x: _keep_norm(x, inner(x))


def _keep_norm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xf, yf = x.float(), y.float()
    scale = xf.norm(dim=-1, keepdim=True) / yf.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return (yf * scale).to(x.dtype)


class RowPositions:
    """Where every row of the next batched pass is: the generator's `observer`. `positions`
    (B, T): each column's absolute position in its own row, -1 at padding; `rows` (B,): which of
    the context's rows each batch row is (rows that finished have left)."""

    def __init__(self) -> None:
        self.positions: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None

    def __call__(self, positions: torch.Tensor, rows: torch.Tensor) -> None:
        self.positions, self.rows = positions, rows


class RowSlot:
    """One hook of a batched pass: row r's own intervention `ivs[r]` (None: unedited), each at
    its own positions. A row's edit is what `Intervention.apply` does to it alone."""

    def __init__(self, hook: str, ivs: list[Intervention | None], where: RowPositions):
        self.hook, self.ivs, self.where = hook, ivs, where
        self._table = torch.zeros(len(ivs), 0, dtype=torch.bool)
        self._groups: dict[tuple[int, ...], list] = {}

    def _masks(self, n: int) -> torch.Tensor:
        """(rows, ≥ n) which positions each row edits (its PositionMask, evaluated once)."""
        if self._table.shape[1] < n:
            n = max(n, 2 * self._table.shape[1], 256)
            pos = torch.arange(n)
            self._table = torch.stack([
                iv.positions(pos).bool() if iv is not None else torch.zeros(n, dtype=torch.bool)
                for iv in self.ivs])
        return self._table

    def _edits(self, rows: tuple[int, ...]) -> list[tuple[torch.Tensor | None, Callable]]:
        """(batch rows, edit) groups of the rows in the batch: rows whose edits stack (or are one
        and the same callable) share one call; None = every batch row."""
        if rows not in self._groups:
            groups: dict[Hashable, list[tuple[int, Callable]]] = {}
            for b, r in enumerate(rows):
                iv = self.ivs[r]
                if iv is None:
                    continue
                key = getattr(iv.fn, "stack_key", None)
                key = ("fn", id(iv.fn)) if key is None else ("stack", key)
                groups.setdefault(key, []).append((b, iv.fn))
            out = []
            for key, members in groups.items():
                fns = [f for _, f in members]
                fn = fns[0] if key[0] == "fn" or len(fns) == 1 else fns[0].stack(fns)
                idx = None if len(members) == len(rows) else torch.tensor([b for b, _ in members])
                out.append((idx, fn))
            self._groups[rows] = out
        return self._groups[rows]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        pos, rows = self.where.positions, self.where.rows
        if pos is None or rows is None or pos.shape != x.shape[:2]:
            raise RuntimeError(f"{self.hook}: a per-row intervention ran in a pass whose row "
                               "positions nobody gave; pass the context's RowPositions to "
                               "generate_batch as its observer")
        table = self._masks(int(pos.max()) + 1)
        mask = table[rows[:, None], pos.clamp(min=0)] & (pos >= 0)
        if not mask.any():
            return x
        edited = x
        for idx, fn in self._edits(tuple(rows.tolist())):
            if idx is None:
                edited = fn(x).to(x.dtype)
            else:
                if edited is x:
                    edited = x.clone()
                idx = idx.to(x.device)
                edited[idx] = fn(x[idx]).to(x.dtype)
        return torch.where(mask.to(x.device)[:, :, None], edited, x)


@contextmanager
def intervene_rows(model: nn.Module, per_row: Sequence[Sequence[Intervention]]
                   ) -> Iterator[RowPositions]:
    """Row r of every batched pass of `model` inside the block gets `per_row[r]` (empty: none),
    at its own positions, as `intervene(model, per_row[r])` would give it alone. Yields the
    `RowPositions` the generator must update before every pass (`generate_batch`'s observer).

    The k-th intervention of a row at a hook meets the k-th of the other rows at that hook in one
    slot; slots attach in the order they first appear, so rows that list their hooks in the same
    order (as every steering method does) see exactly the unbatched order."""
    where = RowPositions()
    slots: dict[tuple[str, int], list[Intervention | None]] = {}
    for r, ivs in enumerate(per_row):
        seen: dict[str, int] = {}
        for iv in ivs:
            k = seen[iv.hook] = seen.get(iv.hook, -1) + 1
            slots.setdefault((iv.hook, k), [None] * len(per_row))[r] = iv
    layers = decoder_layers(model)
    handles = []
    try:
        for (hook, _), ivs in slots.items():
            layer, kind = parse_hook(hook, len(layers))
            handles += _attach(layers[layer], kind, RowSlot(hook, ivs, where))
        yield where
    finally:
        for h in handles:
            h.remove()
