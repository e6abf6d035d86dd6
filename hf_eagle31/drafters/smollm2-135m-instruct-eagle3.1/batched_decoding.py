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

The policy: constant chains, K shrinking as the batch grows (`batch_draft_length`): a cycle verifies B x (K + 1)
tokens, and on hardware where extra verified rows are not free a large batch already keeps the target busy, so
drafting pays less. Trees, context copies and confidence bounds apply at batch size 1.

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import inspect
import logging
import time

import torch
from transformers.cache_utils import DynamicCache

from .candidate_generator import check_assisted_target
from .sequence_rules import TargetChoice, eos_ids, host_stopping_rule, trim
from .speculation_stats import SpeculationStats


logger = logging.getLogger("hf_eagle31.modeling")

# Verified tokens per cycle summed over the batch: K = max(0, floor(BATCH_TOKEN_BUDGET / B) - 1), at most the
# configured K. Measured on this CPU (docs/results.md, "Batches"): see `batch_draft_length`.
BATCH_TOKEN_BUDGET = 16


def batch_draft_length(batch_size: int, num_assistant_tokens: int, budget: int = BATCH_TOKEN_BUDGET) -> int:
    """The draft length of a batch: as long as B x (K + 1) verified tokens fit the budget, at most the configured K;
    0 means plain batched steps (the drafter is not run)."""
    return max(0, min(num_assistant_tokens, budget // batch_size - 1))


class BatchedChainGenerator:
    """Constant-K chains for B rows over one batched drafter cache with per-row validity masks."""

    policy = "batched chain"

    def __init__(self, drafter, target, generation_config, settings, batch_size):
        drafter.check_target(target.config)
        check_assisted_target(target)
        drafter.use_target_embeddings(target)
        self.drafter, self.device = drafter, drafter.device
        self.layer_ids = list(drafter.config.target_layer_ids)
        self.k = batch_draft_length(batch_size, settings.num_assistant_tokens)
        if settings.tree is not None or settings.copy_tokens or settings.confidence_threshold:
            logger.warning(
                "batch size %d: drafting constant chains of %d tokens per row (trees, context copies and confidence "
                "bounds apply at batch size 1)", batch_size, self.k,
            )
        self.stats = SpeculationStats(policy=self.policy, rows=[SpeculationStats(policy=self.policy, target_forwards=1)
                                                                for _ in range(batch_size)])
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

    def draft(self):
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

    def compact(self):
        self.valid = compact_cache(self.cache, self.valid)


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
    gen = BatchedChainGenerator(drafter, model, generation_config, settings, batch)
    choose = TargetChoice(logits_processor, bool(generation_config.do_sample))
    stats, eos = gen.stats, eos_ids(generation_config)
    pad = generation_config._pad_token_tensor
    pad = int(pad) if pad is not None else (min(eos) if eos else 0)
    device = input_ids.device
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    mask = model_kwargs.get("attention_mask")
    valid = (mask if mask is not None else torch.ones_like(input_ids)).bool()  # (B, L0)

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
    first = _choose_rows(choose, input_ids, outputs.logits[:, -1].float())  # (B,)
    host_first = first.tolist()
    _extend(rows, done, [[t] for t in host_first], budget, eos)
    position = valid.sum(-1)  # (B,) position id of each row's bonus token
    bonus = first

    # The drafter is fed the prompt's features (pad columns masked; positions count real tokens).
    prompt_positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    tokens = torch.cat([input_ids[:, 1:], first[:, None]], dim=-1)
    features = {i: outputs.hidden_states[i] for i in gen.layer_ids}
    if gen.k:
        gen.timed(gen.feed, tokens, features, valid, prompt_positions, torch.full((batch,), input_ids.shape[1] - 1,
                                                                                   device=device))

    while not _all_done(done, rows, stopping_criteria, input_ids, pad):
        k = gen.k
        if k:
            candidates, draft_logits = gen.timed(gen.draft)  # (B, K), (B, K, D)
            candidates = candidates.to(device)
        else:
            candidates = input_ids.new_zeros(batch, 0)
        block = torch.cat([bonus[:, None], candidates], dim=-1)  # (B, K + 1)
        positions = position[:, None] + torch.arange(k + 1, device=device)[None]  # (B, K + 1)
        attention = torch.cat([valid, valid.new_ones(batch, k + 1)], dim=-1).long()  # (B, C + K + 1)
        outputs = model(input_ids=block, position_ids=positions, attention_mask=attention, use_cache=True,
                        output_hidden_states=gen.layer_ids, **{cache_name: cache})
        stats.target_forwards += 1
        accepted, choice = _accept(choose, gen, input_ids, rows, candidates, draft_logits if k else None,
                                   outputs.logits.float())  # (B,), (B, K + 1) target tokens per column
        new_bonus = choice.gather(1, accepted[:, None])[:, 0]  # (B,)
        packed = torch.cat([accepted[:, None], candidates, new_bonus[:, None]], dim=-1).tolist()  # one host read
        emitted = [p[1 : 1 + p[0]] + [p[-1]] for p in packed]
        for b, appended in enumerate(_extend(rows, done, emitted, budget, eos)):
            if appended and k:  # a speculation cycle of a row still generating
                for record in (stats, stats.rows[b]):
                    record.draft_lengths.append(k)
                    record.accepted.append(appended - 1)
                stats.rows[b].target_forwards += 1
        columns = torch.arange(k + 1, device=device)[None]
        kept = columns <= accepted[:, None]  # (B, K + 1) bonus and accepted candidates
        valid = torch.cat([valid, kept], dim=-1)
        position = position + accepted + 1
        bonus = new_bonus
        if k:
            next_tokens = torch.cat([candidates, new_bonus[:, None]], dim=-1).scatter(1, accepted[:, None],
                                                                                      new_bonus[:, None])
            gen.timed(gen.feed, next_tokens, {i: outputs.hidden_states[i] for i in gen.layer_ids}, kept, positions,
                      accepted)
        if valid.shape[1] > 2 * int(valid.sum(-1).max()) + 8:  # more than half holes: gather the valid columns
            valid = compact_cache(cache, valid)
            if k:
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


def _choose_rows(choose, prefix_rows, logits):
    """(B,) the target's token per row from (B, V) logits after `prefix_rows` (B, L)."""
    processed = choose.process(prefix_rows, logits)
    return torch.multinomial(processed.softmax(-1), 1)[:, 0] if choose.do_sample else processed.argmax(-1)


def _accept(choose, gen, input_ids, rows, candidates, draft_logits, logits):
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
