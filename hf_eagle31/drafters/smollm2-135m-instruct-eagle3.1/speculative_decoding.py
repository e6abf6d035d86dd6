# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The speculation loop of `target.generate(**inputs, assistant_model=drafter)`, and its one door into transformers.

    prefill (target)  -> first token; the drafter is fed the prompt's features
    repeat:  draft    = generator.propose(ids)                     chain (1, n) or tree (n nodes)
             inputs   = generator.verify_inputs(ids, draft, ctx)   block (1, n + 1), positions, mask
             outputs  = target(**inputs)                           one verifying forward
             emitted  = generator.accept(ids, draft, logits)       n_accepted + 1 tokens (host list)
             trim at eos / max_length; ids += emitted; stop?
             generator.update(ids, draft, n_accepted, ...)         target cache to the accepted tokens; drafter fed
    (propose may return None: one plain target step instead, whose features reach the generator's next `update`
    with draft None; `adaptive_drafting.AdaptiveTreeGenerator` chooses such steps when drafting does not pay)

The generators (`candidate_generator.EagleCandidateGenerator` for chains, `tree_drafting.TreeCandidateGenerator`
for trees) own every drafting decision; this loop owns the sequence, the stopping rules, the streamer and the output.
Per cycle it reads from the device once for a greedy chain (the accepted count and tokens in one `.tolist()`); a
tree reads its structure once more, and once per depth its growth gate is checked.

The door: transformers runs assisted generation in `GenerationMixin._assisted_decoding` and has no public hook for a
candidate generator that verifies trees or owns its loop. `install_generation_door` wraps that one method, once per
process (idempotent across copies of this file): when the assistant is an hf-eagle31 drafter the call runs
`speculative_decoding`, every other call goes to transformers unchanged. `speculative_generate` is the same loop as a
`custom_generate` callable (`target.generate(..., custom_generate=speculative_generate, drafter=drafter)`), a
patch-free entry (docs/ARCHITECTURE.md, "The door into transformers").

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import functools
import inspect
import time

import torch

from .batched_decoding import batched_speculative_decoding
from .candidate_generator import check_transformers_version
from .drafting_settings import CHAIN_HINT, TREE_FIELDS, DraftingSettings
from .sequence_rules import TargetChoice, eos_ids, host_stopping_rule, trim


class SequenceContext:
    """
    The target's side of the sequence: its model and cache, the number of tokens `length`, and the 2D attention mask
    when the prompt is padded (`padding` masked positions, all of them left of the first real token: every token the
    loop appends is real). Position ids are cache indices minus the padding.
    """

    def __init__(self, model, cache, attention_mask, length: int):
        self.model, self.cache, self.length = model, cache, length
        self.mask = None
        self.padding = 0
        if attention_mask is not None and attention_mask.dim() == 2:
            self.padding = int(attention_mask.shape[1] - attention_mask.sum())  # one host read per call
            self.mask = attention_mask.bool() if self.padding else None

    def positions(self, n: int) -> torch.Tensor:
        """(1, n) position ids of n tokens starting at the last token of the sequence."""
        start = self.length - 1 - self.padding
        return torch.arange(start, start + n, device=self.model.device)[None]

    def mask_2d(self, n: int) -> torch.Tensor | None:
        """(1, length - 1 + n) the 2D mask of a forward of n tokens starting at the last token (None when unpadded)."""
        if self.mask is None:
            return None
        return torch.cat([self.mask, self.mask.new_ones(1, n - 1)], dim=-1).long()

    def prefix_mask(self) -> torch.Tensor | None:
        """(length - 1,) bool: the cached positions a new query may see (None when unpadded)."""
        return None if self.mask is None else self.mask[0, :-1]

    def advance(self, new: int) -> None:
        self.length += new
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(1, new)], dim=-1)


@torch.no_grad()
def speculative_decoding(
    model, input_ids, logits_processor, stopping_criteria, generation_config, drafter=None, synced_gpus=False,
    streamer=None, **model_kwargs,
):
    """Speculative greedy decoding / sampling with an hf-eagle31 drafter; returns what `generate` returns."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    _check_call(model, input_ids, generation_config, synced_gpus)
    if input_ids.shape[0] > 1:  # ragged rows: batched_decoding.py
        settings = DraftingSettings.resolve(generation_config, drafter)
        return batched_speculative_decoding(model, input_ids, logits_processor, stopping_criteria, generation_config,
                                            drafter, settings, streamer=streamer, **model_kwargs)
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    gen = drafter.get_candidate_generator(
        target=model, generation_config=generation_config, input_ids=input_ids, logits_processor=logits_processor,
        model_kwargs=model_kwargs,
    )
    stats, choose = gen.stats, TargetChoice(logits_processor, bool(generation_config.do_sample))
    out = _Outputs(generation_config)
    eos = eos_ids(generation_config)
    stop_on_host = host_stopping_rule(stopping_criteria)

    # 1. Prefill, as transformers' loop does it (the drafter drafts nothing before the target's features exist).
    cache = model_kwargs.get(cache_name)
    if cache is not None:
        _record_past(cache, gen.num_drafting_tokens)
    model_inputs = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
    if "logits_to_keep" in model_inputs:
        model_inputs["logits_to_keep"] = 1
    outputs = model(**{**model_inputs, **out.request(gen)})
    cache = getattr(outputs, cache_name)
    if not getattr(cache, "is_croppable", True):  # (a property from transformers 5.24)
        raise ValueError("speculative decoding needs a cache that can be cropped after a rejected draft.")
    if hasattr(gen, "check_cache"):
        gen.check_cache(cache)
    stats.target_forwards += 1
    context = SequenceContext(model, cache, model_kwargs.get("attention_mask"), input_ids.shape[1])
    row = outputs.logits[:, -1].float()
    token, processed = choose.choose(input_ids, row)
    emitted = [int(token)]
    out.add(outputs, [0], processed, row, prefill=True)
    pending = None  # (draft, accepted path) of the last cycle, whose caches are updated before the next draft

    while True:
        input_ids = torch.cat([input_ids, torch.tensor([emitted], device=input_ids.device)], dim=-1)  # (1, L)
        context.advance(len(emitted))
        if streamer is not None:
            streamer.put(torch.tensor([emitted]))
        if _finished(stopping_criteria, stop_on_host, input_ids, emitted, eos, out):
            break
        if stats.target_forwards == 1:
            gen.begin(input_ids, outputs, context.padding)
        elif pending is not None:
            gen.emitted(emitted)
            gen.update(input_ids, pending[0], len(emitted) - 1, pending[1], outputs, cache)
        draft = gen.propose(input_ids)  # candidates (n,), or None: a plain step (the length budget, or its choice)
        if draft is None:  # 2a. one plain step; the next cycle hands its features to `gen.update` (draft None)
            step = model(input_ids=input_ids[:, -1:], position_ids=context.positions(1),
                         attention_mask=context.mask_2d(1), use_cache=True, **{cache_name: cache}, **out.request(gen))
            stats.target_forwards += 1
            row = step.logits[:, -1].float()
            token, processed = choose.choose(input_ids, row)
            out.add(step, [0], processed, row)
            emitted, outputs, pending = [int(token)], step, (None, [0])
            continue
        # 2. Verify every candidate in one target forward.
        inputs = gen.verify_inputs(input_ids, draft, context)  # input_ids / position_ids (1, n + 1), mask
        outputs = model(**inputs, use_cache=True, **{cache_name: cache}, **out.request(gen))
        stats.target_forwards += 1
        logits = outputs.logits[0]  # (n + 1, V) in the target's dtype
        # 3. Accept: the emitted tokens, the rows they were chosen from, the block rows of the accepted path.
        emitted, processed, path = gen.accept(input_ids, draft, logits, choose)
        emitted = trim(emitted, generation_config.max_length - input_ids.shape[1], eos)
        gen.record(draft, len(emitted) - 1)
        rows = path[: len(emitted)] if path is not None else list(range(len(emitted)))
        out.add(outputs, rows, processed, logits)
        pending = (draft, path if path is not None else rows)
    # (the last cycle's caches are not updated: generation ended)

    if streamer is not None:
        streamer.end()
    return out.result(input_ids, cache, GenerateDecoderOnlyOutput)


def _check_call(model, input_ids, generation_config, synced_gpus):
    if model.config.is_encoder_decoder:
        raise ValueError("EAGLE speculative decoding supports decoder-only targets only.")
    if synced_gpus:
        raise ValueError("EAGLE speculative decoding runs on one process: synced_gpus (ZeRO-3 / FSDP) is not supported.")


def _record_past(cache, recurrent_states_to_keep):
    """Lets the cache roll back a rejected draft (recurrent states of hybrid targets: transformers >= 5.25)."""
    if hasattr(cache, "get_recurrent_states_to_keep"):  # (the releases that take the count)
        cache.activate_past_recording(recurrent_states_to_keep=recurrent_states_to_keep)
    else:
        cache.activate_past_recording()


def _finished(stopping_criteria, on_host, input_ids, emitted, eos, out) -> bool:
    if not on_host:
        return bool(stopping_criteria(input_ids, out.scores_tuple()).all())
    from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria, MaxTimeCriteria

    for criterion in stopping_criteria:
        if isinstance(criterion, MaxLengthCriteria) and input_ids.shape[1] >= criterion.max_length:
            return True
        if isinstance(criterion, MaxTimeCriteria) and time.time() - criterion.initial_timestamp > criterion.max_time:
            return True
    return bool(eos) and emitted[-1] in eos and any(isinstance(c, EosTokenCriteria) for c in stopping_criteria)


class _Outputs:
    """What `return_dict_in_generate` asks for: scores, logits, hidden states and attentions, one entry per token."""

    def __init__(self, generation_config):
        wanted = bool(generation_config.return_dict_in_generate)
        self.return_dict = wanted
        self.scores = [] if wanted and generation_config.output_scores else None
        self.logits = [] if wanted and generation_config.output_logits else None
        self.hidden = [] if wanted and generation_config.output_hidden_states else None
        self.attentions = [] if wanted and generation_config.output_attentions else None

    def request(self, gen) -> dict:
        extra = {"output_hidden_states": gen.hidden_request}
        if self.attentions is not None:
            extra["output_attentions"] = True
        return extra

    def add(self, outputs, rows, processed, raw, prefill=False):
        """The entries of tokens chosen from block `rows` of `raw` (M, V) logits: `processed` holds their processed
        rows in order (None: no processors, the raw rows). Nothing is computed unless the caller asked for it."""
        if self.scores is not None:
            chosen = processed[: len(rows)] if processed is not None else raw[rows].float()
            self.scores.extend(chosen[i : i + 1] for i in range(len(rows)))
        if self.logits is not None:
            self.logits.extend(raw[i : i + 1].float() for i in rows)
        for kept, name in ((self.hidden, "hidden_states"), (self.attentions, "attentions")):
            if kept is None:
                continue
            layers = getattr(outputs, name)
            if prefill:  # the prompt's entry holds every prompt position, as in transformers' loops
                kept.append(tuple(layers))
            else:
                index = torch.tensor(rows, device=layers[0].device)
                dim = 1 if name == "hidden_states" else 2
                kept.extend(tuple(t.index_select(dim, index[i : i + 1]) for t in layers) for i in range(len(rows)))

    def scores_tuple(self):
        return tuple(self.scores) if self.scores is not None else None

    def result(self, sequences, cache, output_class):
        if not self.return_dict:
            return sequences
        fields = output_class.__dataclass_fields__
        return output_class(
            sequences=sequences,
            scores=self.scores_tuple(),
            logits=tuple(self.logits) if self.logits is not None else None,
            hidden_states=tuple(self.hidden) if self.hidden is not None else None,
            attentions=tuple(self.attentions) if self.attentions is not None else None,
            **{"cache" if "cache" in fields else "past_key_values": cache},
        )


# ---------------------------------------------------------------------- the door


def is_drafter(model) -> bool:
    """An hf-eagle31 drafter, from any copy of the remote code (duck-typed: classes differ between copies)."""
    return hasattr(model, "get_candidate_generator") and hasattr(model, "check_target")


def install_generation_door() -> None:
    """
    Makes `target.generate(..., assistant_model=drafter)` run `speculative_decoding` for hf-eagle31 drafters.

    Wraps `GenerationMixin._assisted_decoding` once (idempotent across copies of this file); every call whose
    assistant is not an hf-eagle31 drafter goes to the original unchanged. Also gives `GenerationConfig` class-level
    unset values for the tree fields, so `generate(..., draft_tree=True, tree_depth=5)` passes its kwarg validation.
    Raises a one-line RuntimeError when the installed transformers lacks what the loop uses.
    """
    from transformers import GenerationConfig
    from transformers.generation.utils import GenerationMixin

    for name in TREE_FIELDS:
        if not hasattr(GenerationConfig, name):
            setattr(GenerationConfig, name, None)
    original = getattr(GenerationMixin, "_assisted_decoding", None)
    if getattr(original, "_hf_eagle31_door", False):
        return
    check_transformers_version()
    signature = inspect.signature(original)

    @functools.wraps(original)
    def _assisted_decoding(self, *args, **kwargs):
        call = signature.bind(self, *args, **kwargs).arguments
        assistant = call.get("assistant_model")
        if not is_drafter(assistant):
            return original(self, *args, **kwargs)
        extra = dict(call.get("model_kwargs") or call.get("kwargs") or {})
        return speculative_decoding(
            self, call["input_ids"], call["logits_processor"], call["stopping_criteria"], call["generation_config"],
            drafter=assistant, synced_gpus=call.get("synced_gpus", False), streamer=call.get("streamer"), **extra,
        )

    _assisted_decoding._hf_eagle31_door = True
    GenerationMixin._assisted_decoding = _assisted_decoding


def speculative_generate(
    model, input_ids, logits_processor, stopping_criteria, generation_config, drafter=None, synced_gpus=False,
    **model_kwargs,
):
    """
    The speculation loop as a `custom_generate` callable, with no patch of transformers:

        target.generate(**inputs, custom_generate=speculative_generate, drafter=drafter, max_new_tokens=64)

    transformers prepares the inputs, logits processors and stopping criteria as for any call, then runs this. Set
    drafting options on `drafter.generation_config` (generate kwargs unknown to GenerationConfig are refused before a
    custom callable runs), and note that transformers hands a custom callable no `streamer`.
    """
    if not is_drafter(drafter):
        raise ValueError(
            "custom_generate=speculative_generate needs the drafter: target.generate(..., "
            "custom_generate=speculative_generate, drafter=drafter)."
        )
    return speculative_decoding(model, input_ids, logits_processor, stopping_criteria, generation_config,
                                drafter=drafter, synced_gpus=synced_gpus, **model_kwargs)


__all__ = ["install_generation_door", "speculative_decoding", "speculative_generate", "CHAIN_HINT"]
