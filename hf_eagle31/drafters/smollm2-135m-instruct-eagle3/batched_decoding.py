# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Speculative decoding for a batch of B > 1 rows inside `generate`: every row drafts K tokens per cycle and accepts its
own number of them, with the caches never moved per cycle.

    verify   (target)  one forward over (B, K + 1) = [bonus_b, c_b1..c_bK] at each row's own positions
    accept             row b keeps its first a_b matching candidates and a bonus token (a_b + 1 tokens, ragged)
    caches             the K + 1 new columns stay in both caches; a row's rejected columns are masked out of every
                       later query (a (B, columns) validity mask, the 2D attention mask of the target), and each row
                       counts positions by its real tokens only. So a cycle appends K + 1 columns whatever is
                       accepted; when more than half of the cache is holes the valid columns are gathered to the right
                       (`compact`), so memory stays within twice what the real tokens need.
    drafter            fed the whole verified block with the same masks (rejected columns masked as keys; each row's
                       next draft starts from its last accepted position), then K - 1 batched chain steps.

Every row's tokens equal plain batched greedy decoding on the same batch (same padding): masked columns carry no
weight, and positions are those plain decoding gives. With sampling, each row is standard speculative sampling.

The policy: a greedy batch without logits processors drafts the drafter's tree settings per row
(`BatchedTreeGenerator`: each row its own tree, the accepted path gathered to the front of the verified block per
row); otherwise constant chains, K shrinking as the batch grows (`batch_draft_length`): a cycle verifies B x (K + 1)
tokens, and on hardware where extra verified rows are not free a large batch already keeps the target busy, so
drafting pays less. Context copies and confidence bounds apply at batch size 1.

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import inspect
import logging
import math
import time
from dataclasses import replace

import torch
from transformers.cache_utils import DynamicCache

from .candidate_generator import check_assisted_target
from .sequence_rules import TargetChoice, eos_ids, host_stopping_rule, trim
from .speculation_stats import SpeculationStats


logger = logging.getLogger("hf_eagle31.modeling")

# Verified tokens per cycle summed over the batch: K = max(0, floor(BATCH_TOKEN_BUDGET / B) - 1), at most the
# configured K. Measured on this CPU (docs/results.md, "Batches"): see `batch_draft_length`.
BATCH_TOKEN_BUDGET = 3


def batch_draft_length(batch_size: int, num_assistant_tokens: int, budget: int = BATCH_TOKEN_BUDGET) -> int:
    """The draft length of a batch: as long as B x (K + 1) verified tokens fit the budget, at most the configured K;
    0 means plain batched steps (the drafter is not run)."""
    return max(0, min(num_assistant_tokens, budget // batch_size - 1))


class BatchedGenerator:
    """The drafter side of a batch: one drafter cache for B rows with a (B, columns) validity mask, each row's
    drafter position and the logits / hidden state at its last fed position."""

    policy = "?"
    drafts = True  # False: plain batched steps, the drafter is not run
    keeps_prefix = True  # the accepted columns are a prefix of the verified block (no gather needed)

    def __init__(self, drafter, target, generation_config, settings, batch_size):
        drafter.check_target(target.config)
        check_assisted_target(target)
        drafter.use_target_embeddings(target)
        self.drafter, self.device = drafter, drafter.device
        self.layer_ids = list(drafter.config.target_layer_ids)
        self.settings = settings
        self.stats = SpeculationStats(
            policy=self.policy, rows=[SpeculationStats(policy=self.policy, target_forwards=1) for _ in range(batch_size)]
        )
        drafter.last_speculation_stats = self.stats
        self.cache = DynamicCache()
        self.valid = None  # (B, C) bool: the drafter cache's columns each row may see
        self.position = None  # (B,) drafter position of each row's last fed position
        self.logits = self.hidden = None  # (B, D), (B, 1, H) at each row's last fed position

    def timed(self, function, *args):
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.stats.drafter_time_s += time.perf_counter() - start

    def feed(self, tokens, features, valid, positions, last):
        """
        Feeds a block of T columns: `tokens` (B, T) the token input x_{p+1} of each column, `features` {layer: (B, T, H')},
        `valid` (B, T) which columns are real, `positions` (B, T), `last` (B,) the column whose logits draft next.
        """
        self._crop()
        t = tokens.shape[1]
        prefix = self.valid if self.valid is not None else valid.new_zeros(valid.shape[0], 0)
        causal = torch.ones(t, t, dtype=torch.bool, device=self.device).tril()  # (T, T)
        mask = torch.cat([prefix[:, None].expand(-1, t, -1), causal[None] & valid[:, None]], dim=-1)  # (B, T, C + T)
        out = self.drafter(tokens, target_hidden_states=[features[i].to(self.device) for i in self.layer_ids],
                           position_ids=positions, cache=self.cache, attention_mask=mask)
        self.stats.drafter_forwards += 1
        self.valid = torch.cat([prefix, valid], dim=-1)
        rows = torch.arange(tokens.shape[0], device=self.device)
        self.logits, self.hidden = out.logits[rows, last], out.next_hidden[rows, last][:, None]
        self.position = positions[rows, last]

    def _crop(self):
        extra = self.cache.get_seq_length() - (self.valid.shape[1] if self.valid is not None else 0)
        if extra > 0:
            self.cache.crop(-extra)

    def compact(self):
        self._crop()
        self.valid = compact_cache(self.cache, self.valid)


class BatchedChainGenerator(BatchedGenerator):
    """Constant-K chains for B rows."""

    policy = "batched chain"

    def __init__(self, drafter, target, generation_config, settings, batch_size):
        super().__init__(drafter, target, generation_config, settings, batch_size)
        self.k = batch_draft_length(batch_size, settings.num_assistant_tokens)
        self.drafts = self.k > 0
        if settings.tree is not None or settings.copy_tokens or settings.confidence_threshold:
            logger.warning(
                "batch size %d: drafting constant chains of %d tokens per row (draft trees run in greedy batches "
                "without logits processors; context copies and confidence bounds at batch size 1)", batch_size, self.k,
            )

    def propose(self):
        """(B, K) candidates (target ids), and the (B, K, D) draft logits they were picked from."""
        d2t = self.drafter.d2t
        logits, hidden = self.logits, self.hidden
        picks, all_logits = [], []
        for step in range(self.k):
            best = logits.argmax(-1)  # (B,)
            picks.append(best + d2t[best])
            all_logits.append(logits)
            if step == self.k - 1:
                break
            mask = torch.cat([self.valid, self.valid.new_ones(self.valid.shape[0], step + 1)], dim=-1)[:, None]
            out = self.drafter(picks[-1][:, None], hidden_states=hidden, position_ids=(self.position + step + 1)[:, None],
                               cache=self.cache, attention_mask=mask)
            self.stats.drafter_forwards += 1
            logits, hidden = out.logits[:, -1], out.next_hidden
        return torch.stack(picks, dim=1), torch.stack(all_logits, dim=1)

    def verify_inputs(self, draft, bonus, position, valid, dtype):
        candidates = draft[0].to(bonus.device) if draft is not None else bonus.new_zeros(bonus.shape[0], 0)
        block = torch.cat([bonus[:, None], candidates], dim=-1)  # (B, K + 1)
        width = block.shape[1]
        return {
            "input_ids": block,
            "position_ids": position[:, None] + torch.arange(width, device=block.device)[None],  # (B, K + 1)
            "attention_mask": torch.cat([valid, valid.new_ones(valid.shape[0], width)], dim=-1).long(),  # (B, C + K + 1)
        }

    def accept(self, choose, input_ids, rows, draft, logits):
        candidates = draft[0].to(logits.device) if draft is not None else logits.new_zeros(logits.shape[0], 0).long()
        accepted, choice = _accept(choose, input_ids, rows, candidates, logits)
        path = torch.arange(logits.shape[1], device=logits.device)[None].expand(logits.shape[0], -1)
        return accepted, choice.gather(1, accepted[:, None])[:, 0], path

    def sizes(self, draft):
        return torch.full((self.stats.rows.__len__(), 1), self.k if draft is not None else 0, device=self.device)


class BatchedTreeGenerator(BatchedGenerator):
    """
    Draft trees for B rows (greedy): each row grows its own tree in batched drafter forwards (B rows x k frontier
    nodes, a (B, k, kv) mask each), keeps its best `total` nodes, and is verified with a (B, 1, M, kv) tree mask; the
    walk runs on the device (a node is accepted when it and all its ancestors carry the target's choice at their
    parent), so a cycle reads the device once. The growth gate is applied on the device per row (see
    `tree_drafting.grow_tree`).
    """

    policy = "batched tree"
    keeps_prefix = False

    def __init__(self, drafter, target, generation_config, settings, batch_size):
        super().__init__(drafter, target, generation_config, settings, batch_size)
        # Nodes per row shrink with the batch as a chain's K does: B x (N + 1) verified tokens within the budget.
        self.tree = replace(settings.tree, total=batch_draft_length(batch_size, settings.tree.total))
        if settings.copy_tokens:
            logger.warning("batch size %d: draft trees without the context copy (it runs at batch size 1)", batch_size)

    def propose(self):
        """The rows' trees: tokens, parents (indices into [root] + nodes), depths, valid (B, N) each."""
        tree, d2t, device = self.tree, self.drafter.d2t, self.device
        batch = self.logits.shape[0]
        logp = self.logits.float().log_softmax(-1)  # (B, D)
        k = min(tree.topk, logp.shape[-1])
        s, t = logp.topk(k, dim=-1)  # (B, k)
        scores, tokens = [s], [t]
        parents, depths = [torch.full((batch, k), -1, device=device)], [torch.ones(batch, k, dtype=torch.long,
                                                                                   device=device)]
        frontier, frontier_scores, frontier_tokens = torch.arange(k, device=device).expand(batch, k), s, t
        hidden = self.hidden.expand(-1, k, -1)  # (B, k, H)
        ancestors = torch.zeros(batch, k, 0, dtype=torch.bool, device=device)  # frontier x tree slots fed so far
        eye = torch.eye(k, dtype=torch.bool, device=device).expand(batch, k, k)
        gate = math.log(tree.min_probability) if tree.min_probability > 0 else None
        open_gate, created = None, k
        depth = tree.depth
        for d in range(1, depth):
            if gate is not None:
                passed = frontier_scores.max(-1).values >= gate  # (B,)
                open_gate = passed if open_gate is None else open_gate & passed
            mask = torch.cat([self.valid[:, None].expand(-1, k, -1), ancestors, eye], dim=-1)  # (B, k, kv)
            out = self.drafter(frontier_tokens + d2t[frontier_tokens], hidden_states=hidden,
                               position_ids=(self.position[:, None] + d).expand(-1, k), cache=self.cache,
                               attention_mask=mask)
            self.stats.drafter_forwards += 1
            child_scores, child_tokens = out.logits.float().log_softmax(-1).topk(k, dim=-1)  # (B, k, k)
            cumulative = (frontier_scores[..., None] + child_scores).flatten(1)  # (B, k * k)
            if open_gate is not None:
                cumulative = torch.where(open_gate[:, None], cumulative, float("-inf"))
            scores.append(cumulative)
            tokens.append(child_tokens.flatten(1))
            parents.append(frontier.repeat_interleave(k, dim=1))
            depths.append(torch.full((batch, k * k), d + 1, dtype=torch.long, device=device))
            new = created + torch.arange(k * k, device=device)
            created += k * k
            if d == depth - 1:
                break
            best = cumulative.topk(k, dim=-1).indices  # (B, k)
            parent_row = best // k
            frontier, frontier_scores = new[best], cumulative.gather(1, best)
            frontier_tokens = child_tokens.flatten(1).gather(1, best)
            hidden = out.next_hidden.gather(1, parent_row[..., None].expand(-1, -1, hidden.shape[-1]))
            grown = torch.cat([ancestors, eye], dim=-1)
            ancestors = grown.gather(1, parent_row[..., None].expand(-1, -1, grown.shape[-1]))
        scores, tokens = torch.cat(scores, 1), torch.cat(tokens, 1)
        parents, depths = torch.cat(parents, 1), torch.cat(depths, 1)
        total = min(tree.total, created)
        keep = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :total].sort(-1).values  # (B, N)
        slot = torch.full((batch, created), -1, dtype=torch.long, device=device)
        slot.scatter_(1, keep, torch.arange(1, total + 1, device=device).expand(batch, -1))
        kept_parents = parents.gather(1, keep)
        new_parents = torch.where(kept_parents < 0, 0, slot.gather(1, kept_parents.clamp(min=0)))
        kept_tokens = tokens.gather(1, keep)
        return (kept_tokens + d2t[kept_tokens], new_parents, depths.gather(1, keep),
                scores.gather(1, keep).isfinite())

    def verify_inputs(self, draft, bonus, position, valid, dtype):
        tokens, parents, depths, real = draft
        batch, n = tokens.shape
        device = bonus.device
        block = torch.cat([bonus[:, None], tokens.to(device)], dim=-1)  # (B, M = N + 1)
        positions = position[:, None] + torch.cat([depths.new_zeros(batch, 1), depths], dim=-1).to(device)  # (B, M)
        self.ancestors = _batched_ancestors(parents.to(device), self.tree.depth)  # (B, M, M)
        visible = torch.cat([valid[:, None].expand(-1, n + 1, -1), self.ancestors], dim=-1)  # (B, M, C + M)
        additive = torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill_(~visible, torch.finfo(dtype).min)
        return {"input_ids": block, "position_ids": positions, "attention_mask": additive[:, None]}

    def accept(self, choose, input_ids, rows, draft, logits):
        tokens, parents, depths, real = (x.to(logits.device) for x in draft)
        choice = logits.argmax(-1)  # (B, M)
        match = (tokens == choice.gather(1, parents)) & real  # (B, N): node carries its parent's target choice
        within = self.ancestors[:, 1:, 1:]  # (B, N, N) node x its ancestors among the nodes (itself included)
        accepted_node = ~(within & ~match[:, None, :]).any(-1)  # (B, N)
        reach = torch.where(accepted_node, depths, 0)  # (B, N)
        accepted, best = reach.max(-1)  # (B,) path length, deepest accepted node
        column = torch.where(accepted > 0, best + 1, 0)  # (B,) its block column (0: the root)
        new_bonus = choice.gather(1, column[:, None])[:, 0]
        # the path: for each depth j, the ancestor of `column` at depth j (0 past the accepted length)
        on_path = self.ancestors.gather(1, column[:, None, None].expand(-1, 1, self.ancestors.shape[-1]))[:, 0]
        node_depths = torch.cat([depths.new_zeros(depths.shape[0], 1), depths], dim=-1)  # (B, M)
        levels = torch.arange(min(self.tree.depth, tokens.shape[1]) + 1, device=logits.device)  # (a path fits the block)
        at_level = on_path[:, None, :] & (node_depths[:, None, :] == levels[None, :, None])  # (B, D + 1, M)
        path = at_level.int().argmax(-1)  # (B, D + 1): 0 where no such node
        return accepted, new_bonus, path

    def sizes(self, draft):
        return draft[3].sum(-1, keepdim=True)


def _batched_ancestors(parents, depth):
    """(B, M, M) bool over [root] + nodes: row i is True at i and its ancestors (`parents` (B, N) into [root] +
    nodes, a tree of at most `depth` levels)."""
    batch, n = parents.shape
    parent_of = torch.cat([parents.new_zeros(batch, 1), parents], dim=-1)  # (B, M): the root's parent is itself
    anc = torch.eye(n + 1, dtype=torch.bool, device=parents.device).expand(batch, -1, -1).clone()
    for _ in range(depth):
        anc = anc | anc.gather(1, parent_of[..., None].expand(-1, -1, n + 1))
    return anc


def compact_cache(cache, valid):
    """Gathers each row's valid columns to the right of `cache` (left padding where a row has fewer); returns the
    new (B, C') validity mask. Positions are unchanged (they were applied to the keys when cached)."""
    counts = valid.sum(-1)  # (B,)
    width = int(counts.max())
    # Row b's valid columns in order, right-aligned: a stable sort of (valid first by index) then a slice.
    order = torch.sort((~valid).int() * valid.shape[1] + torch.arange(valid.shape[1], device=valid.device), dim=-1)
    index = order.indices[:, :width]  # (B, width): valid columns first, in order, then invalid ones
    shift = width - counts  # left padding of each row
    take = torch.arange(width, device=valid.device)[None] - shift[:, None]  # (B, width) slot -> rank among valid
    source = index.gather(1, take.clamp(min=0))
    new_valid = take >= 0
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
            continue
        idx = source.to(layer.keys.device)[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
        layer.keys, layer.values = layer.keys.gather(2, idx), layer.values.gather(2, idx)
    return new_valid


@torch.no_grad()
def batched_speculative_decoding(model, input_ids, logits_processor, stopping_criteria, generation_config, drafter,
                                 settings, streamer=None, **model_kwargs):
    """Speculative decoding of B > 1 rows; returns what `generate` returns (sequences, right-padded per row)."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    batch = input_ids.shape[0]
    if streamer is not None:
        raise ValueError("`streamer` supports batch size 1 only (as in transformers): generate one prompt at a time "
                         "to stream it.")
    if generation_config.return_dict_in_generate and any(
        getattr(generation_config, f, False) for f in ("output_scores", "output_logits", "output_hidden_states",
                                                      "output_attentions")):
        raise ValueError(f"with a drafter and batch size {batch}, generate returns sequences only: drop "
                         "output_scores / output_logits / output_hidden_states / output_attentions, or pass one row.")
    choose = TargetChoice(logits_processor, bool(generation_config.do_sample))
    # Trees for greedy batches without logits processors (their walk is then on the device); chains otherwise.
    tree = (settings.tree is not None and not choose.do_sample and not len(logits_processor)
            and getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")  # (a 4D mask per row)
            and batch_draft_length(batch, settings.tree.total) > 0)
    gen = (BatchedTreeGenerator if tree else BatchedChainGenerator)(drafter, model, generation_config, settings, batch)
    stats, eos = gen.stats, eos_ids(generation_config)
    pad = generation_config._pad_token_tensor
    pad = int(pad) if pad is not None else (min(eos) if eos else 0)
    device = input_ids.device
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    mask = model_kwargs.get("attention_mask")
    valid = (mask if mask is not None else torch.ones_like(input_ids)).bool()  # (B, C) the target cache's real columns

    # 1. Prefill.
    model_inputs = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
    if "logits_to_keep" in model_inputs:
        model_inputs["logits_to_keep"] = 1
    outputs = model(**{**model_inputs, "output_hidden_states": gen.layer_ids})
    cache = getattr(outputs, cache_name)
    kinds = {type(layer).__name__ for layer in getattr(cache, "layers", ())}
    if not kinds or not kinds <= {"DynamicLayer"}:
        raise ValueError(
            f"speculative decoding of a batch needs a dynamic cache of full-attention layers; this target's cache has "
            f"{sorted(kinds)} (sliding-window, static or recurrent layers): call generate with one row at a time."
        )
    stats.target_forwards += 1
    rows = [[] for _ in range(batch)]  # each row's generated tokens (host)
    done = [False] * batch
    budget = generation_config.max_length - input_ids.shape[1]
    bonus, _ = choose.choose(input_ids, outputs.logits[:, -1].float())  # (B,)
    _extend(rows, done, [[t] for t in bonus.tolist()], budget, eos)
    position = valid.sum(-1)  # (B,) position id of each row's bonus token

    # The drafter is fed the prompt's features (pad columns masked; positions count real tokens).
    if gen.drafts:
        prompt_positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        tokens = torch.cat([input_ids[:, 1:], bonus[:, None]], dim=-1)
        last = torch.full((batch,), input_ids.shape[1] - 1, device=device)
        gen.timed(gen.feed, tokens, {i: outputs.hidden_states[i] for i in gen.layer_ids}, valid, prompt_positions,
                  last)

    while not _all_done(done, rows, stopping_criteria, input_ids, pad):
        draft = gen.timed(gen.propose) if gen.drafts else None
        inputs = gen.verify_inputs(draft, bonus, position, valid, model.dtype)  # block (B, M), positions, mask
        outputs = model(**inputs, use_cache=True, output_hidden_states=gen.layer_ids, **{cache_name: cache})
        stats.target_forwards += 1
        # accepted (B,), next bonus (B,), path (B, W): block columns of the root and the accepted nodes, first to last
        accepted, new_bonus, path = gen.accept(choose, input_ids, rows, draft, outputs.logits.float())
        block = inputs["input_ids"]
        path_tokens = block.gather(1, path[:, 1:])  # (B, W - 1)
        packed = torch.cat([accepted[:, None], gen.sizes(draft), new_bonus[:, None], path_tokens], dim=-1).tolist()
        emitted = [p[3 : 3 + p[0]] + [p[2]] for p in packed]  # the cycle's one host read
        for b, appended in enumerate(_extend(rows, done, emitted, budget, eos)):
            if appended and draft is not None:  # a speculation cycle of a row still generating
                for record in (stats, stats.rows[b]):
                    record.draft_lengths.append(packed[b][1])
                    record.accepted.append(appended - 1)
                stats.rows[b].target_forwards += 1
        # 4. Caches: the target keeps the path's columns (gathered to the front of the block), masked per row.
        width = path.shape[1]
        if not gen.keeps_prefix:
            keep_paths(cache, block.shape[1], path)
        kept = torch.arange(width, device=device)[None] <= accepted[:, None]  # (B, W)
        valid = torch.cat([valid, kept], dim=-1)
        if gen.drafts:  # the drafter is fed the path: each column's token input is the next path token
            next_tokens = torch.cat([path_tokens, new_bonus[:, None]], dim=-1).scatter(1, accepted[:, None],
                                                                                       new_bonus[:, None])
            features = {i: outputs.hidden_states[i].gather(1, path[..., None].expand(-1, -1, outputs.hidden_states[i]
                                                                                      .shape[-1]))
                        for i in gen.layer_ids}
            positions = position[:, None] + torch.arange(width, device=device)[None]
            gen.timed(gen.feed, next_tokens, features, kept, positions, accepted)
        position = position + accepted + 1
        bonus = new_bonus
        if valid.shape[1] > 2 * int(valid.sum(-1).max()) + 8:  # more than half holes: gather the valid columns
            valid = compact_cache(cache, valid)
            if gen.drafts:
                gen.compact()
    width = max(len(r) for r in rows)
    out = torch.full((batch, width), pad, dtype=input_ids.dtype, device=device)
    for b, r in enumerate(rows):
        out[b, : len(r)] = torch.tensor(r, dtype=input_ids.dtype)
    sequences = torch.cat([input_ids, out], dim=-1)
    if generation_config.return_dict_in_generate:
        fields = GenerateDecoderOnlyOutput.__dataclass_fields__
        return GenerateDecoderOnlyOutput(sequences=sequences, **{"cache" if "cache" in fields else "past_key_values": None})
    return sequences


def keep_paths(cache, block: int, path: torch.Tensor) -> None:
    """Per row, gathers the block columns `path` (B, W) to the front of the last `block` cached columns and crops the
    rest (columns past a row's accepted path stay, masked by the caller)."""
    width = path.shape[1]
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
            continue
        base = layer.keys.shape[-2] - block
        index = (base + path).to(layer.keys.device)[:, None, :, None].expand(-1, layer.keys.shape[1], -1,
                                                                              layer.keys.shape[-1])
        layer.keys[:, :, base : base + width] = layer.keys.gather(2, index)
        layer.values[:, :, base : base + width] = layer.values.gather(2, index)
    if block > width:
        cache.crop(-(block - width))


def _accept(choose, input_ids, rows, candidates, logits):
    """
    Row-wise acceptance over `logits` (B, K + 1, V): returns (accepted (B,), choice (B, K + 1)) where choice[b, a_b]
    is row b's next token. Greedy: the argmax chain. Sampling: speculative sampling per row with the drafter's picks
    as deterministic proposals (q one-hot): c_i is accepted with probability p(c_i), the first rejected position is
    resampled from p without c_i (norm(max(0, p - q))), and after the last candidate the bonus is drawn from p.
    """
    batch, width = logits.shape[:2]
    k = width - 1
    if len(choose.logits_processor):  # processors see each row's own prefix, as in plain decoding
        processed = torch.empty_like(logits)
        for b in range(batch):
            prefix = torch.cat([input_ids[b], torch.tensor(rows[b], device=input_ids.device, dtype=input_ids.dtype)])
            for i in range(width):
                ids = torch.cat([prefix, candidates[b, :i]])[None]
                processed[b, i] = choose.process(ids, logits[b, i : i + 1])[0]
        logits = processed
    if not choose.do_sample:
        choice = logits.argmax(-1)  # (B, K + 1)
        accepted = (candidates == choice[:, :k]).long().cumprod(-1).sum(-1)
        return accepted, choice
    p = logits.softmax(-1)  # (B, K + 1, V)
    q = torch.zeros_like(p[:, :k]).scatter(-1, candidates[..., None], 1.0)  # (B, K, V) one-hot proposals
    ratio = p[:, :k].gather(-1, candidates[..., None])[..., 0]  # (B, K): p(c_i) / q(c_i), q(c_i) = 1
    accepted = (torch.rand_like(ratio) > ratio).long().cumsum(-1).lt(1).sum(-1)  # (B,)
    residual = torch.cat([(p[:, :k] - q).clamp(min=0), p[:, k:]], dim=1)  # (B, K + 1, V)
    row = residual.gather(1, accepted[:, None, None].expand(-1, 1, residual.shape[-1]))[:, 0]  # (B, V)
    token = torch.multinomial(row / row.sum(-1, keepdim=True), 1)[:, 0]
    choice = torch.cat([candidates, token[:, None]], dim=-1).scatter(1, accepted[:, None], token[:, None])
    return accepted, choice


def _extend(rows, done, emitted, budget, eos) -> list[int]:
    """Appends each unfinished row's tokens (cut at its budget and first eos); returns how many each row took."""
    taken = []
    for b, tokens in enumerate(emitted):
        if done[b]:
            taken.append(0)
            continue
        tokens = trim(tokens, budget - len(rows[b]), eos)
        rows[b].extend(tokens)
        taken.append(len(tokens))
        if len(rows[b]) >= budget or (tokens and tokens[-1] in eos):
            done[b] = True
    return taken


def _all_done(done, rows, stopping_criteria, input_ids, pad) -> bool:
    """Every row finished (eos or length, decided on the host); other stopping criteria are called on each row's
    sequence, right-padded, as plain decoding would see it, once per cycle."""
    if not all(done) and not host_stopping_rule(stopping_criteria):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=input_ids.dtype, device=input_ids.device)
        for b, r in enumerate(rows):
            ids[b, : len(r)] = torch.tensor(r, dtype=input_ids.dtype)
        stopped = stopping_criteria(torch.cat([input_ids, ids], dim=-1), None).tolist()
        for b, s in enumerate(stopped):
            done[b] = done[b] or bool(s)
    return all(done)


__all__ = ["BATCH_TOKEN_BUDGET", "BatchedChainGenerator", "batch_draft_length", "batched_speculative_decoding",
           "compact_cache"]
