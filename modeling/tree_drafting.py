# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Dynamic draft trees (EAGLE-2 style) inside `target.generate(**inputs, assistant_model=drafter)`.

transformers' assisted loop verifies one chain and rolls its cache back by a count, so a tree needs its own
verify / accept / cache step. `install_tree_hook` wraps `GenerationMixin._assisted_decoding` once: when the assistant
is an hf-eagle31 drafter and the generation config asks for a tree (`generate(..., draft_tree=True)`, or the
drafter's generation_config.json), `tree_decoding` runs instead; every other
call goes to transformers' loop unchanged. One cycle:

    drafter: feed the verified positions (target features), then grow the tree — depth 1 = top-k of the last
             logits; each further depth feeds the k best frontier nodes (by cumulative log-probability) as one
             batched forward with a tree mask over the drafter's own cache and keeps their top-k children;
             finally rerank every node and keep the best `tree_total_tokens` (an ancestor-closed set).
    copy:    with `prompt_lookup_num_tokens`, the continuation of an n-gram match of the context is one more
             branch of the same tree (shared prefixes merged).
    target:  one forward over [bonus] + nodes with a 4D additive mask (prefix visible, each node sees its
             ancestors; sliding-window layers their window) and position ids prefix_len + depth.
    accept:  walk from the root: the target's token at a node (argmax, or a sample, of its processed logits) picks
             the child carrying it; the first token without a child is the bonus. With sampling this is exact
             (multi-draft speculative sampling with deterministic drafts): every emitted token is drawn from the
             target's processed distribution given the emitted prefix.
    caches:  the target keeps the accepted path's keys/values only (gathered to the front of the verified block,
             the rest cropped); the drafter's tree entries are cropped and the accepted path is fed next cycle with
             the target's features, as in chain drafting.

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import functools
import inspect
import math
import time
from types import SimpleNamespace

import torch


# Generation-config fields of the tree policy, and their defaults: depth 3, top-4, 10 nodes measured fastest of the
# shapes tried with the shipped EAGLE-3.1 drafter on this CPU (docs/results/bench-trees-mtbench-bfloat16.log: 1.56x
# plain vs 1.35x for 5x4x16, whose extra drafter depths cost more than their accepted tokens give); a 0.1 gate on
# growing a depth then saved a third of the drafter forwards for 2% of tau (docs/results/bench-trees-gated-*.log:
# 1.59x vs 1.50x plain on MT-Bench, 1.46x vs 1.38x perturbed; 3x6x14 tied with it, 3x8x20 was slower).
# `tree_min_probability`: a further depth is drafted only while the frontier's most probable node has at least this
# cumulative draft probability (0 = always grow to `tree_depth`); a depth below it would add nodes the target almost
# never accepts, for the price of one more drafter forward.
TREE_DEFAULTS = {
    "draft_tree": False,
    "tree_depth": 3,
    "tree_topk": 4,
    "tree_total_tokens": 10,
    "tree_min_probability": 0.1,
}

CHAIN_HINT = "use chain drafting instead: generate(..., assistant_model=drafter, draft_tree=False)"


def tree_settings(generation_config, drafter) -> dict | None:
    """The tree policy of this call ({depth, topk, total, min_probability}), or None for chain drafting. A field set
    in the call's generation config wins over the drafter's generation_config.json."""
    own = getattr(drafter, "generation_config", None)
    values = {}
    for name, default in TREE_DEFAULTS.items():
        value = getattr(generation_config, name, None)
        if value is None:
            value = getattr(own, name, None)
        values[name] = default if value is None else value
    if not values["draft_tree"]:
        return None
    depth, topk, total = (int(values[n]) for n in ("tree_depth", "tree_topk", "tree_total_tokens"))
    if depth < 1 or topk < 1 or total < 1:
        raise ValueError(
            f"tree_depth={depth}, tree_topk={topk}, tree_total_tokens={total}: a draft tree needs all three >= 1."
        )
    min_probability = float(values["tree_min_probability"])
    if not 0.0 <= min_probability < 1.0:  # (also refuses NaN)
        raise ValueError(f"tree_min_probability={min_probability}: use a probability in [0, 1) (0 = always grow).")
    return {"depth": depth, "topk": topk, "total": total, "min_probability": min_probability}


# ---------------------------------------------------------------------- drafter side: growing the tree


@torch.no_grad()
def grow_tree(gen, depth: int, topk: int, total: int, min_probability: float = 0.0):
    """
    Grows a dynamic tree from the drafter state of `gen` (an `EagleCandidateGenerator` whose last fed position is
    the root). Returns (tokens (n,) target ids, parents (n,) indices into [root] + nodes, depths (n,)), nodes in an
    order where every parent precedes its children. Growth stops before `depth` once no frontier node has a
    cumulative draft probability of `min_probability` (the shape depends on the draft side only, so verification
    stays exact).
    """
    drafter, device = gen.drafter, gen.device
    d2t = drafter.d2t
    logp = gen.last_logits.float().log_softmax(-1)[0]  # (D,)
    k = min(topk, logp.shape[-1])
    s, t = logp.topk(k)
    all_scores, all_tokens, all_parents = [s], [t], [torch.full((k,), -1, device=device)]
    all_depths = [torch.ones(k, dtype=torch.long, device=device)]
    frontier, frontier_scores, frontier_tokens = torch.arange(k, device=device), s, t
    hidden = gen.last_hidden.expand(-1, k, -1)  # every depth-1 node's parent is the root
    prefix = gen.cache.get_seq_length()
    ancestors = torch.zeros(k, 0, dtype=torch.bool, device=device)  # frontier rows x tree slots fed so far
    created = k
    eye = torch.eye(k, dtype=torch.bool, device=device)
    for d in range(1, depth):
        if min_probability > 0 and float(frontier_scores.max()) < math.log(min_probability):
            break
        mask = torch.cat([torch.ones(k, prefix, dtype=torch.bool, device=device), ancestors, eye], dim=1)
        ids = (frontier_tokens + d2t[frontier_tokens])[None]
        positions = torch.full((1, k), gen.num_fed - 1 + d, device=device)
        out = drafter(ids, hidden_states=hidden, position_ids=positions, cache=gen.cache, attention_mask=mask)
        gen.stats.drafter_forwards += 1
        child_scores, child_tokens = out.logits[0].float().log_softmax(-1).topk(k, dim=-1)  # (k, k)
        cumulative = (frontier_scores[:, None] + child_scores).flatten()
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
    return kept_tokens + d2t[kept_tokens], new_parents, depths[keep]


def add_copy_branch(tokens, parents, depths, copy):
    """Adds `copy` (target ids continuing an n-gram match) as a chain from the root, sharing existing prefixes."""
    tokens, parents, depths = tokens.tolist(), parents.tolist(), depths.tolist()
    children = {(p, t): i + 1 for i, (p, t) in enumerate(zip(parents, tokens))}
    node, added = 0, 0
    for d, token in enumerate(copy.tolist(), start=1):
        child = children.get((node, token))
        if child is None:
            tokens.append(token)
            parents.append(node)
            depths.append(d)
            child = len(tokens)
            children[(node, token)] = child
            added += 1
        node = child
    as_tensor = functools.partial(torch.tensor, dtype=torch.long)
    return as_tensor(tokens), as_tensor(parents), as_tensor(depths), added


def ancestor_matrix(parents, max_depth):
    """(M, M) bool over [root] + nodes: row i is True at i and its ancestors."""
    parent_of = torch.cat([parents.new_zeros(1), parents])  # the root's parent is itself
    m = parent_of.numel()
    anc = torch.eye(m, dtype=torch.bool, device=parents.device)
    for _ in range(max_depth):
        anc = anc | anc[parent_of]
    return anc


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


def tree_attention_mask(model, cache, ancestors, positions, dtype):
    """
    The 4D additive mask(s) of a tree block of M queries against the target's cache: a tensor (1, 1, M, kv_len),
    or a dict by layer type when the target mixes full and sliding-window layers (what its forward accepts).
    """
    m = ancestors.shape[0]
    device = ancestors.device
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(config, "layer_types", None)

    def build(layer_idx):
        layer = cache.layers[layer_idx]
        kv_length, kv_offset = cache.get_mask_sizes(m, layer_idx)
        prefix_positions = torch.arange(kv_offset, kv_offset + kv_length - m, device=device)
        query = positions[0]
        visible = torch.cat([torch.ones(m, kv_length - m, dtype=torch.bool, device=device), ancestors], dim=1)
        if getattr(layer, "is_sliding", False):
            key = torch.cat([prefix_positions, query])
            visible = visible & ((query[:, None] - key[None]) < layer.sliding_window)
        additive = torch.zeros(m, kv_length, dtype=dtype, device=device)
        additive.masked_fill_(~visible, torch.finfo(dtype).min)
        return additive[None, None]

    if layer_types and len(set(layer_types)) > 1:
        return {kind: build(layer_types.index(kind)) for kind in dict.fromkeys(layer_types)}
    return build(0)


def keep_accepted_path(cache, block: int, keep: torch.Tensor):
    """Keeps, of the last `block` cached positions, the ones at `keep` (sorted; first the root) and drops the rest."""
    m = keep.numel()
    if not torch.equal(keep, torch.arange(m, device=keep.device)):
        for layer in cache.layers:
            if not getattr(layer, "is_initialized", False) or layer.keys is None or layer.keys.numel() == 0:
                continue
            base = layer.keys.shape[-2] - block
            index = (base + keep).to(layer.keys.device)
            layer.keys[..., base : base + m, :] = layer.keys.index_select(-2, index)
            layer.values[..., base : base + m, :] = layer.values.index_select(-2, index)
    cache.crop(-(block - m))


# ---------------------------------------------------------------------- the decoding loop


@torch.no_grad()
def tree_decoding(
    model,
    input_ids,
    logits_processor,
    stopping_criteria,
    generation_config,
    synced_gpus=False,
    streamer=None,
    assistant_model=None,
    settings=None,
    **model_kwargs,
):
    """Tree-drafted greedy decoding / sampling; returns what transformers' `_assisted_decoding` returns."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    if input_ids.shape[0] != 1:
        raise ValueError(f"draft trees run one sequence at a time; got batch size {input_ids.shape[0]}.")
    if model.config.is_encoder_decoder or synced_gpus:
        raise ValueError(f"draft trees support decoder-only targets on one process: {CHAIN_HINT}.")
    if generation_config.return_dict_in_generate and (
        generation_config.output_attentions or generation_config.output_hidden_states
    ):
        raise ValueError(f"draft trees do not return attentions or hidden states: {CHAIN_HINT}.")
    mask_2d = model_kwargs.get("attention_mask")
    if mask_2d is not None and not bool(mask_2d.all()):
        raise ValueError(f"draft trees take an unpadded prompt (attention_mask all ones): {CHAIN_HINT}.")
    check_tree_attention(model)
    cache_name = _cache_argument(model)
    cache = model_kwargs.get(cache_name)
    if cache is None:
        raise RuntimeError("assisted decoding requires a cache")
    cache.activate_past_recording()

    gen = assistant_model.get_candidate_generator(
        target=model, generation_config=generation_config, input_ids=input_ids,
        logits_processor=logits_processor, model_kwargs=model_kwargs,
    )
    stats = gen.stats
    do_sample = bool(generation_config.do_sample)
    want_scores = generation_config.return_dict_in_generate and generation_config.output_scores
    want_logits = generation_config.return_dict_in_generate and generation_config.output_logits
    scores, raw_logits = ([] if want_scores else None), ([] if want_logits else None)
    eos = getattr(generation_config, "_eos_token_tensor", None)
    hidden_request = gen.model_kwargs_overrides["output_hidden_states"]

    choose = functools.partial(target_choice, logits_processor, do_sample)

    # 1. Prefill, as transformers' loop does it (the drafter drafts nothing before the target's features exist).
    model_inputs = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
    if "logits_to_keep" in model_inputs:
        model_inputs["logits_to_keep"] = 1
    model_inputs["output_hidden_states"] = hidden_request
    outputs = model(**model_inputs)
    cache = getattr(outputs, cache_name)
    if not getattr(cache, "is_croppable", True):  # (a property from transformers 5.24)
        raise ValueError(f"draft trees need a croppable cache: {CHAIN_HINT}.")
    check_tree_cache(cache)
    stats.target_forwards += 1
    row = outputs.logits[:, -1].float()
    token, processed = choose(input_ids, row)
    valid = torch.tensor([[token]], device=input_ids.device)
    step_logits, step_raw = [processed], [row]
    first = True

    while True:
        input_ids = torch.cat([input_ids, valid], dim=-1)
        if streamer is not None:
            streamer.put(valid.cpu())
        if want_scores:
            scores.extend(step_logits)
        if want_logits:
            raw_logits.extend(step_raw)
        finished = bool(stopping_criteria(input_ids, tuple(scores) if scores is not None else None).all())
        if finished:
            break
        start = time.perf_counter()
        if first:
            gen._feed_target_features(input_ids, outputs)
            first = False
        room = generation_config.max_length - input_ids.shape[1] - 1
        depth = min(settings["depth"], room)
        if depth >= 1:
            tokens, parents, depths = grow_tree(
                gen, depth, settings["topk"], settings["total"], settings["min_probability"]
            )
            tokens, parents, depths = tokens.cpu(), parents.cpu(), depths.cpu()
            copy = gen._context_match(input_ids[0], room) if gen.copy_tokens else None
            if copy is not None and copy.numel():
                tokens, parents, depths, added = add_copy_branch(tokens, parents, depths, copy.cpu())
                stats.copied_cycles += int(added > 0)
        else:
            tokens = parents = depths = torch.zeros(0, dtype=torch.long)
        stats.drafter_time_s += time.perf_counter() - start

        # 2. Verify the whole tree in one target forward.
        device = input_ids.device
        tokens, parents, depths = tokens.to(device), parents.to(device), depths.to(device)
        n = tokens.numel()
        root = input_ids.shape[1] - 1
        block = torch.cat([input_ids[:, -1:], tokens[None]], dim=-1)
        positions = (root + torch.cat([depths.new_zeros(1), depths]))[None]
        ancestors = ancestor_matrix(parents, int(depths.max()) if n else 0)
        mask = tree_attention_mask(model, cache, ancestors, positions, model.dtype)
        outputs = model(
            input_ids=block, attention_mask=mask, position_ids=positions, use_cache=True,
            output_hidden_states=hidden_request, **{cache_name: cache},
        )
        stats.target_forwards += 1
        logits = outputs.logits[0]  # (M, V) in the target's dtype; rows go to float32 only on the accepted walk

        # 3. Accept: walk from the root along the target's choices.
        children = {}
        for i, (p, t) in enumerate(zip(parents.tolist(), tokens.tolist())):
            children[(p, t)] = i + 1
        fast = not do_sample and not len(logits_processor)
        greedy = logits.argmax(-1).tolist() if fast else None  # (upcasting is exact: the same argmax as in float32)
        node, path, emitted, step_logits, step_raw = 0, [0], [], [], []
        while True:
            row = logits[node : node + 1].float()
            if fast:
                token, processed = greedy[node], row
            else:
                prefix = torch.cat([input_ids, block[:, path[1:]]], dim=-1) if len(path) > 1 else input_ids
                token, processed = target_choice(logits_processor, do_sample, prefix, row)
            emitted.append(token)
            step_logits.append(processed)
            step_raw.append(row)
            node = children.get((node, token))
            if node is None:
                break
            path.append(node)
        # max length and eos cut the accepted tokens, as in transformers' loop
        budget = generation_config.max_length - input_ids.shape[1]
        emitted = emitted[:budget]
        if eos is not None:
            hits = [i for i, t in enumerate(emitted) if t in eos.tolist()]
            if hits:
                emitted = emitted[: hits[0] + 1]
        accepted = len(emitted) - 1
        step_logits, step_raw = step_logits[: accepted + 1], step_raw[: accepted + 1]
        if n:
            stats.draft_lengths.append(n)
            stats.accepted.append(accepted)

        # 4. Caches: the target keeps the root and the accepted nodes; the drafter is fed their features.
        keep = torch.tensor(path[: accepted + 1], device=device)
        keep_accepted_path(cache, block.shape[1], keep)
        valid = torch.tensor([emitted], device=device)
        features = SimpleNamespace(
            hidden_states=_gather_hidden_states(outputs.hidden_states, gen.layer_ids, keep)
        )
        start = time.perf_counter()
        gen._feed_target_features(torch.cat([input_ids, valid], dim=-1), features)
        stats.drafter_time_s += time.perf_counter() - start

    if streamer is not None:
        streamer.end()
    if generation_config.return_dict_in_generate:
        return GenerateDecoderOnlyOutput(
            sequences=input_ids,
            scores=tuple(scores) if scores is not None else None,
            logits=tuple(raw_logits) if raw_logits is not None else None,
            **{"cache" if "cache" in GenerateDecoderOnlyOutput.__dataclass_fields__ else "past_key_values": cache},
        )
    return input_ids


def _cache_argument(model) -> str:
    """The name of the cache argument of `model.forward` and of generate's model kwargs: `cache` (transformers >= 5.24)
    or `past_key_values` (5.23)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


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


def _gather_hidden_states(hidden_states, layer_ids, keep):
    """{layer id: (1, len(keep), H)} — the target features of the accepted path."""
    return {i: hidden_states[i][:, keep.to(hidden_states[i].device)] for i in layer_ids}


# ---------------------------------------------------------------------- dispatch


def install_tree_hook() -> None:
    """
    Routes `target.generate(..., assistant_model=drafter)` to `tree_decoding` when the drafter's policy is a tree.

    Wraps `GenerationMixin._assisted_decoding` once (idempotent across copies of this file); every call whose
    assistant is not an hf-eagle31 drafter with `draft_tree` set goes to the original unchanged.
    """
    from transformers import GenerationConfig
    from transformers.generation.utils import GenerationMixin

    # The tree fields become ordinary `generate` options (`target.generate(..., draft_tree=True, tree_depth=5)`):
    # `GenerationConfig.update` only takes keys the config has, so they get class-level "unset" values.
    for name in TREE_DEFAULTS:
        if not hasattr(GenerationConfig, name):
            setattr(GenerationConfig, name, None)
    original = getattr(GenerationMixin, "_assisted_decoding", None)
    if original is None or getattr(original, "_hf_eagle31_tree", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def _assisted_decoding(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        call = bound.arguments
        assistant = call.get("assistant_model")
        settings = None
        if hasattr(assistant, "get_candidate_generator") and hasattr(assistant, "check_target"):
            settings = tree_settings(call["generation_config"], assistant)
        if settings is None:
            return original(self, *args, **kwargs)
        extra = dict(call.pop("model_kwargs", {}) or call.pop("kwargs", {}) or {})
        return tree_decoding(
            self,
            call["input_ids"],
            call["logits_processor"],
            call["stopping_criteria"],
            call["generation_config"],
            synced_gpus=call.get("synced_gpus", False),
            streamer=call.get("streamer"),
            assistant_model=assistant,
            settings=settings,
            **extra,
        )

    _assisted_decoding._hf_eagle31_tree = True
    GenerationMixin._assisted_decoding = _assisted_decoding
