# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Dynamic draft trees (EAGLE-2 style): `TreeCandidateGenerator`, one method per step of a cycle.

    grow     (drafter)  depth 1 = top-k of the last logits; each further depth feeds the k best frontier nodes (by
                        cumulative log-probability) as one batched forward with a tree mask over the drafter's own
                        cache and keeps their top-k children; then the best `total` nodes overall (ancestor-closed).
                        With `prompt_lookup_num_tokens` the continuation of an n-gram match of the context is one
                        more branch (shared prefixes merged).
    verify   (target)   one forward over [bonus] + nodes with a 4D additive mask (prefix visible, each node sees its
                        ancestors; sliding-window layers their window) and position ids root + depth.
    accept              walk from the root: the target's token at a node (argmax, or a sample, of its processed
                        logits) picks the child carrying it; the first token without a child is the bonus. With
                        sampling this is exact (multi-draft speculative sampling with deterministic drafts): every
                        emitted token is drawn from the target's processed distribution given the emitted prefix.
    update   (caches)   the target keeps the accepted path's keys/values only (gathered to the front of the verified
                        block, the rest cropped); the drafter's tree entries are cropped and the accepted path is fed
                        with the target's features, as for chains.

The cycle loop itself is `speculative_decoding.py`. This file travels with every Hub checkpoint (remote code): it
imports torch and transformers only.
"""

import math

import torch

from .candidate_generator import Draft, SpeculativeGenerator
from .drafting_settings import CHAIN_HINT, TreeSettings


class TreeCandidateGenerator(SpeculativeGenerator):
    """Draft trees: grow (drafter), verify inputs (4D mask, positions), accept (walk), update (both caches)."""

    policy = "tree"

    def __init__(self, drafter, target, generation_config, input_ids, logits_processor=None, settings=None, **kw):
        super().__init__(drafter, target, generation_config, input_ids, logits_processor, settings, **kw)
        self.tree: TreeSettings = self.settings.tree
        if target.config.is_encoder_decoder:
            raise ValueError(f"draft trees support decoder-only targets: {CHAIN_HINT}.")
        if generation_config.return_dict_in_generate and (
            generation_config.output_attentions or generation_config.output_hidden_states
        ):
            raise ValueError(f"draft trees do not return attentions or hidden states: {CHAIN_HINT}.")
        check_tree_attention(target)

    @property
    def num_drafting_tokens(self) -> int:
        return self.tree.total + (self.settings.copy_tokens or 0) + 1

    def check_cache(self, cache) -> None:
        check_tree_cache(cache)

    @torch.no_grad()
    def propose(self, input_ids: torch.Tensor) -> Draft | None:
        room = self.max_length - input_ids.shape[1] - 1
        depth = min(self.tree.depth, room)
        if depth < 1:
            return None
        return self.timed(self._grow, depth, room)

    # Whether the growth gate reads the device once per gated depth (None: on a CPU, where a read is free, yes; on an
    # accelerator, no: every depth is drafted and the gate applied on the device, see `grow_tree`).
    gate_on_host: bool | None = None

    def _grow(self, depth, room):
        on_host = self.gate_on_host if self.gate_on_host is not None else self.device.type == "cpu"
        tokens, parents, depths = grow_tree(
            self.state, depth, self.tree.topk, self.tree.total, self.tree.min_probability, gate_on_host=on_host
        )
        n = tokens.shape[0]
        host = torch.cat([tokens, parents, depths]).tolist()  # the tree's one host read (for the walk and the copy)
        tokens, parents, depths = host[:n], host[n : 2 * n], host[2 * n :]
        if 0 in depths:  # nodes below a failed device-side gate; kept nodes come first in every parent chain
            tokens, parents, depths = _drop_gated(tokens, parents, depths)
        copy = self.context_copy(room)
        if copy:
            added = add_copy_branch(tokens, parents, depths, copy)
            self.stats.copied_cycles += int(added > 0)
        return Draft(torch.tensor(tokens, device=self.device), None, parents, depths, tokens)

    def verify_inputs(self, input_ids: torch.Tensor, draft: Draft, context) -> dict:
        """[bonus] + nodes (1, M = n + 1), positions root + depth (1, M), a 4D mask (1, 1, M, kv) or a dict by type."""
        device = input_ids.device
        block = torch.cat([input_ids[:, -1:], draft.tokens.to(device)[None]], dim=-1)  # (1, M)
        offsets = torch.tensor([0, *draft.depths], device=device)  # (M,)
        positions = context.positions(1) + offsets[None]  # (1, M)
        ancestors = ancestor_matrix(draft.parents, device)  # (M, M)
        mask = tree_attention_mask(context.model, context.cache, ancestors, positions, context.model.dtype,
                                   context.prefix_mask(), context.padding)
        return {"input_ids": block, "position_ids": positions, "attention_mask": mask}

    def accept(self, input_ids: torch.Tensor, draft: Draft, logits: torch.Tensor, choose):
        """Walks from the root along the target's choices. Returns (emitted token ids, processed rows, path rows)."""
        children = {(p, t): i + 1 for i, (p, t) in enumerate(zip(draft.parents, draft.host_tokens))}
        fast = not self.do_sample and self.logits_processor is None
        greedy = logits.argmax(-1).tolist() if fast else None  # one host read (argmax exact in the target's dtype)
        node, path, emitted, processed = 0, [0], [], []
        block = None if fast else torch.cat([input_ids[:, -1:], draft.tokens.to(input_ids.device)[None]], dim=-1)
        while True:
            if fast:
                token = greedy[node]
            else:
                prefix = torch.cat([input_ids, block[:, path[1:]]], dim=-1) if len(path) > 1 else input_ids
                token, row = target_choice(choose.logits_processor, self.do_sample, prefix, logits[node : node + 1].float())
                processed.append(row)
            emitted.append(token)
            node = children.get((node, token))
            if node is None:
                break
            path.append(node)
        return emitted, (torch.cat(processed) if processed else None), path

    def update(self, input_ids: torch.Tensor, draft: Draft, accepted: int, path, outputs, cache) -> None:
        keep = path[: accepted + 1]  # block rows: the root and the accepted nodes
        keep_accepted_path(cache, draft.size + 1, keep)
        index = torch.tensor(keep, device=outputs.logits.device)
        features = {i: outputs.hidden_states[i][:, index.to(outputs.hidden_states[i].device)] for i in self.layer_ids}
        self.timed(self.state.feed, input_ids, features)


# ---------------------------------------------------------------------- drafter side: growing the tree


@torch.no_grad()
def grow_tree(state, depth: int, topk: int, total: int, min_probability: float = 0.0, gate_on_host: bool = True):
    """
    Grows a dynamic tree from a `DrafterState` whose last fed position is the root. Returns (tokens (n,) target ids,
    parents (n,) indices into [root] + nodes, depths (n,)), nodes in an order where every parent precedes its
    children. Growth stops before `depth` once no frontier node has a cumulative draft probability of
    `min_probability` (the shape depends on the draft side only, so verification stays exact).

    `gate_on_host=False` decides the gate without reading the device: every depth is drafted, and the nodes below a
    failed gate get score -inf (the caller drops them when it reads the tree). A drafter forward is then spent where
    the host read would have stopped growth — the better trade on a GPU, where a read stalls the queue and a small
    drafter forward costs little; on a CPU a read is free and the forward is not.
    """
    device, d2t = state.device, state.drafter.d2t
    logp = state.logits.float().log_softmax(-1)[0]  # (D,)
    k = min(topk, logp.shape[-1])
    s, t = logp.topk(k)
    all_scores, all_tokens, all_parents = [s], [t], [torch.full((k,), -1, device=device)]
    all_depths = [torch.ones(k, dtype=torch.long, device=device)]
    frontier, frontier_scores, frontier_tokens = torch.arange(k, device=device), s, t
    hidden = state.hidden.expand(-1, k, -1)  # (1, k, H): every depth-1 node's parent is the root
    prefix = state.cache.get_seq_length()
    ancestors = torch.zeros(k, 0, dtype=torch.bool, device=device)  # frontier rows x tree slots fed so far
    created = k
    eye = torch.eye(k, dtype=torch.bool, device=device)
    gate = math.log(min_probability) if min_probability > 0 else None
    open_gate = None  # (1,) bool on the device, with gate_on_host=False: every gate so far passed
    for d in range(1, depth):
        if gate is not None and gate_on_host and frontier_scores.max().item() < gate:  # a host read per gated depth
            break
        if gate is not None and not gate_on_host:
            passed = frontier_scores.max(0, keepdim=True).values >= gate
            open_gate = passed if open_gate is None else open_gate & passed
        mask = torch.cat([torch.ones(k, prefix, dtype=torch.bool, device=device), ancestors, eye], dim=1)  # (k, kv)
        out = state.step((frontier_tokens + d2t[frontier_tokens])[None], hidden, depth=d, attention_mask=mask)
        child_scores, child_tokens = out.logits[0].float().log_softmax(-1).topk(k, dim=-1)  # (k, k)
        cumulative = (frontier_scores[:, None] + child_scores).flatten()  # (k * k,)
        if open_gate is not None:  # below a failed gate: never kept
            cumulative = torch.where(open_gate, cumulative, float("-inf"))
        all_scores.append(cumulative)
        all_tokens.append(child_tokens.flatten())
        all_parents.append(frontier.repeat_interleave(k))
        all_depths.append(torch.full((k * k,), d + 1, dtype=torch.long, device=device))
        new = created + torch.arange(k * k, device=device)
        created += k * k
        if d == depth - 1:
            break
        best = cumulative.topk(k).indices
        parent_row = best // k
        frontier, frontier_scores, frontier_tokens = new[best], cumulative[best], child_tokens.flatten()[best]
        hidden = out.next_hidden[:, parent_row]
        ancestors = torch.cat([ancestors, eye], dim=1)[parent_row]  # the parents' ancestors and the parents
    scores, tokens = torch.cat(all_scores), torch.cat(all_tokens)
    parents, depths = torch.cat(all_parents), torch.cat(all_depths)
    # Rerank: the best `total` nodes by cumulative log-probability. A child never scores above its parent and the
    # stable sort keeps the (earlier) parent first on ties, so the set is ancestor-closed.
    order = torch.sort(scores, descending=True, stable=True).indices[:total]
    keep = order.sort().values  # creation order: parents before children
    position = torch.full((created,), -1, dtype=torch.long, device=device)
    position[keep] = torch.arange(1, keep.numel() + 1, device=device)
    kept_parents = parents[keep]
    new_parents = torch.where(kept_parents < 0, 0, position[kept_parents.clamp(min=0)])
    kept_tokens = tokens[keep]
    if open_gate is not None:  # -inf scores mark nodes below a failed gate: depth 0 tells the caller to drop them
        return kept_tokens + d2t[kept_tokens], new_parents, torch.where(scores[keep].isfinite(), depths[keep], 0)
    return kept_tokens + d2t[kept_tokens], new_parents, depths[keep]


def _drop_gated(tokens, parents, depths):
    """Removes the nodes marked depth 0 (below a failed gate; their descendants are marked too) and re-indexes."""
    index, kept = {0: 0}, ([], [], [])
    for i, (t, p, d) in enumerate(zip(tokens, parents, depths), start=1):
        if d and p in index:
            index[i] = len(kept[0]) + 1
            for column, value in zip(kept, (t, index[p], d)):
                column.append(value)
    return kept


def add_copy_branch(tokens: list, parents: list, depths: list, copy: list) -> int:
    """Adds `copy` (target ids continuing an n-gram match) in place as a chain from the root, sharing existing
    prefixes. Returns the number of nodes added."""
    children = {(p, t): i + 1 for i, (p, t) in enumerate(zip(parents, tokens))}
    node, added = 0, 0
    for d, token in enumerate(copy, start=1):
        child = children.get((node, token))
        if child is None:
            tokens.append(token)
            parents.append(node)
            depths.append(d)
            child = len(tokens)
            children[(node, token)] = child
            added += 1
        node = child
    return added


def ancestor_matrix(parents: list, device=None) -> torch.Tensor:
    """(M, M) bool over [root] + nodes (parents listed before children): row i is True at i and its ancestors."""
    m = len(parents) + 1
    anc = torch.eye(m, dtype=torch.bool)
    for i, p in enumerate(parents, start=1):
        anc[i] |= anc[p]
    return anc.to(device)


# ---------------------------------------------------------------------- target side: mask, verification, cache


def check_tree_attention(model):
    """A one-line error for targets whose attention takes no 4D mask (they can use chain drafting)."""
    attn = getattr(model.config, "_attn_implementation", None)
    if attn not in ("sdpa", "eager"):
        raise ValueError(
            f"draft trees need a target that takes a 4D attention mask (sdpa or eager attention); this target runs "
            f"{attn!r} attention: load it with attn_implementation='sdpa', or {CHAIN_HINT}."
        )


def check_tree_cache(cache):
    """A one-line error for caches a tree's cache surgery cannot handle (they can use chain drafting)."""
    layers = getattr(cache, "layers", None)
    kinds = {type(layer).__name__ for layer in layers or ()}
    if not layers or not kinds <= {"DynamicLayer", "DynamicSlidingWindowLayer"}:
        raise ValueError(
            f"draft trees need a dynamic key/value cache (DynamicCache); this target's cache is "
            f"{type(cache).__name__} with layers {sorted(kinds)} (static, hybrid or recurrent): {CHAIN_HINT}."
        )


def tree_attention_mask(model, cache, ancestors, positions, dtype, prefix_mask=None, position_shift=0):
    """
    The 4D additive mask(s) of a tree block of M queries against the target's cache: a tensor (1, 1, M, kv_len),
    or a dict by layer type when the target mixes full and sliding-window layers (what its forward accepts).
    `prefix_mask` (P,) bool marks the cached positions a query may see (False at left padding); None = all.
    `position_shift`: cache index minus position id of the block (the left padding), for sliding windows.
    """
    m = ancestors.shape[0]
    device = ancestors.device
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(config, "layer_types", None)

    def build(layer_idx):
        layer = cache.layers[layer_idx]
        kv_length, kv_offset = cache.get_mask_sizes(m, layer_idx)
        cached = kv_length - m
        prefix_positions = torch.arange(kv_offset, kv_offset + cached, device=device)
        query = positions[0] + position_shift  # (M,) as cache indices
        seen = torch.ones(m, cached, dtype=torch.bool, device=device)
        if prefix_mask is not None:  # (the cached window of a sliding layer is the last `cached` positions)
            seen = seen & prefix_mask[prefix_mask.shape[0] - cached :].to(device)[None]
        visible = torch.cat([seen, ancestors], dim=1)  # (M, kv_len)
        if getattr(layer, "is_sliding", False):
            key = torch.cat([prefix_positions, query])
            visible = visible & ((query[:, None] - key[None]) < layer.sliding_window)
        additive = torch.zeros(m, kv_length, dtype=dtype, device=device)
        additive.masked_fill_(~visible, torch.finfo(dtype).min)
        return additive[None, None]

    if layer_types and len(set(layer_types)) > 1:
        return {kind: build(layer_types.index(kind)) for kind in dict.fromkeys(layer_types)}
    return build(0)


def keep_accepted_path(cache, block: int, keep: list):
    """Keeps, of the last `block` cached positions, the ones at `keep` (sorted; first the root) and drops the rest."""
    m = len(keep)
    if keep != list(range(m)):
        for layer in cache.layers:
            if not getattr(layer, "is_initialized", False) or layer.keys is None or layer.keys.numel() == 0:
                continue
            base = layer.keys.shape[-2] - block
            index = torch.tensor(keep, device=layer.keys.device) + base
            layer.keys[..., base : base + m, :] = layer.keys.index_select(-2, index)
            layer.values[..., base : base + m, :] = layer.values.index_select(-2, index)
    if block > m:
        cache.crop(-(block - m))


def target_choice(logits_processor, do_sample, prefix_ids, row):
    """
    The target's token after `prefix_ids` from its raw logits `row` (1, V): the argmax, or a sample, of the processed
    logits (as transformers' loop chooses it); also returns the processed logits. Walking the tree with these
    choices is what keeps sampling exact: each emitted token is a draw from the target given the emitted prefix.
    """
    processed = logits_processor(prefix_ids, row.clone()) if len(logits_processor) else row
    if do_sample:
        return int(torch.multinomial(processed.softmax(-1), 1)), processed
    return int(processed.argmax(-1)), processed


