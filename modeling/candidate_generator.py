# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
EAGLE chain drafting: the drafter's state during a `generate` call, and the chain candidate generator.

One cycle of the speculation loop (`speculative_decoding.py`), as a chain generator sees it:

    target forward on [bonus, c_1..c_K]  -> hidden_states (only `target_layer_ids` are requested)
    n accepted                           -> features of positions bonus..c_n are valid (n + 1 of them)
    update:  crop the target's cache to the accepted tokens; feed the n + 1 new positions (token x_{p+1},
             features g_p) to the drafter as one block                                  -> logits, hidden
    propose: pick from the last logits, then K - 1 chain steps (token, own hidden state)

`DrafterState` is the drafter side shared by the chain and the tree generator (`tree_drafting.py`): its cache, the
positions fed so far, the logits and hidden state at the last fed position, and a host copy of the sequence for
context matching. Nothing else reaches into it.

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import transformers
from packaging.version import Version
from transformers.cache_utils import DynamicCache

from .drafting_settings import DEFAULT_NUM_DRAFT_TOKENS, DraftingSettings  # noqa: F401  (re-exported)
from .speculation_stats import SpeculationStats, tau_from_forwards  # noqa: F401  (re-exported)


if TYPE_CHECKING:  # annotations only
    from transformers import GenerationConfig, LogitsProcessorList, PreTrainedModel


# The transformers releases this code is tested with (pyproject.toml declares the same range; CI runs both ends).
# It wraps one private method of transformers' generation loop (`speculative_decoding.install_generation_door`), so a
# release outside the range may break it.
TESTED_TRANSFORMERS = ">=5.23,<5.26"
_TESTED_MIN, _TESTED_END = Version("5.23.0"), Version("5.26.0.dev0")

logger = logging.getLogger("hf_eagle31.modeling")


@dataclass
class Draft:
    """
    The candidates of one cycle, in target ids. A chain: `parents` None (each token's parent is the one before it).
    A tree: `parents[i]` indexes [root] + tokens (0 = the root) and `depths[i]` is the depth of token i.
    q_logits: (n, V) processed full-vocabulary draft logits when sampling (what speculative sampling's q must be).
    """

    tokens: torch.Tensor  # (n,) target ids
    q_logits: torch.Tensor | None = None
    parents: list | None = None
    depths: list | None = None
    host_tokens: list | None = None  # the tokens as a host list, when the generator already read them

    @property
    def size(self) -> int:
        return self.tokens.shape[0]


class ContextHistory:
    """
    A host copy of the sequence (prompt + emitted tokens) and an index of where each n-gram ends, so that finding the
    latest earlier occurrence of the context's last n tokens costs a dictionary lookup, not a scan.
    """

    def __init__(self, tokens: list[int], max_ngram: int):
        self.tokens, self.max_ngram, self.ends = [], max_ngram, {}
        self.extend(tokens)

    def extend(self, new: list[int]) -> None:
        tokens = self.tokens
        for token in new:
            tokens.append(token)
            end = len(tokens) - 1
            for n in range(1, min(self.max_ngram, end + 1) + 1):
                self.ends.setdefault(tuple(tokens[end - n + 1 :]), []).append(end)

    def continuation(self, limit: int) -> list[int] | None:
        """The tokens that followed the latest earlier occurrence of the last n tokens (n = `max_ngram` down to 1),
        at most `limit` of them; None without a match."""
        tokens, length = self.tokens, len(self.tokens)
        for n in range(min(self.max_ngram, length - 1), 0, -1):
            ends = self.ends.get(tuple(tokens[length - n :]))
            if ends is not None and len(ends) > 1:  # ends[-1] is the suffix itself
                start = ends[-2] + 1
                return tokens[start : start + limit]
        return None


class DrafterState:
    """
    The drafter's side of one `generate` call: its own cache, the number of target positions whose features it has
    been fed (`num_fed`), and the logits (1, D) and hidden state (1, 1, H) at the last fed position. `offset` is the
    number of left-padding positions of the prompt: they are never fed, and drafter positions count from the first
    real token.
    """

    def __init__(self, drafter, stats: SpeculationStats, offset: int = 0):
        self.drafter, self.stats, self.device = drafter, stats, drafter.device
        self.layer_ids = list(drafter.config.target_layer_ids)
        self.cache = DynamicCache()
        self.offset = self.num_fed = offset
        self.logits = self.hidden = None

    @property
    def root_position(self) -> int:
        """The drafter position of the last fed position (the root of the next draft)."""
        return self.num_fed - 1 - self.offset

    def feed(self, input_ids: torch.Tensor, hidden_states) -> None:
        """
        Feeds every verified position not fed yet: `input_ids` (1, L) ends with the bonus token (which has no
        features yet); `hidden_states[i]` for i in `target_layer_ids` holds (1, >= new, H') features of the new
        positions, first to last (a tuple indexed by layer, or a dict).
        """
        new = input_ids.shape[1] - 1 - self.num_fed
        features = []
        for i in self.layer_ids:
            h = hidden_states[i]
            if h is None or h.shape[1] < new:
                raise ValueError(f"the target did not return hidden_states[{i}] for the {new} verified positions.")
            features.append(h[:, :new].to(self.device))
        self.crop()
        tokens = input_ids[:, self.num_fed + 1 : self.num_fed + 1 + new].to(self.device)  # x_{p+1} for each p
        start = self.num_fed - self.offset
        positions = torch.arange(start, start + new, device=self.device)[None]
        out = self.drafter(tokens, target_hidden_states=features, position_ids=positions, cache=self.cache,
                           logits_to_keep=1)
        self.stats.drafter_forwards += 1
        self.num_fed += new
        self.logits, self.hidden = out.logits[:, -1], out.next_hidden[:, -1:]

    def crop(self) -> None:
        """Drops the draft entries of the last cycle: the cache keeps only feature-covered positions."""
        extra = self.cache.get_seq_length() - (self.num_fed - self.offset)
        if extra > 0:
            self.cache.crop(-extra)

    def step(self, tokens, hidden, depth: int, attention_mask=None):
        """One drafter forward of W draft tokens (1, W) at `depth` below the root, fed `hidden` (1, W, H). Returns
        the drafter output (logits (1, W, D), next_hidden (1, W, H)); its entries stay in the cache until `crop`."""
        positions = torch.full((1, tokens.shape[1]), self.root_position + depth, device=self.device)
        out = self.drafter(tokens, hidden_states=hidden, position_ids=positions, cache=self.cache,
                           attention_mask=attention_mask)
        self.stats.drafter_forwards += 1
        return out


class SpeculativeGenerator:
    """
    What the chain and the tree generator share: the checks, the settings, the drafter state and the stats of one
    `generate` call. A subclass proposes a `Draft`, builds the target's verification inputs, accepts, and updates
    the caches (`speculative_decoding.py` runs the cycle).
    """

    policy = "?"

    def __init__(
        self,
        drafter: "PreTrainedModel",  # a `DrafterPreTrainedModel` (drafter_common.py)
        target: "PreTrainedModel",
        generation_config: "GenerationConfig",
        input_ids: torch.LongTensor,
        logits_processor: "LogitsProcessorList | None" = None,
        settings: DraftingSettings | None = None,
        **_,
    ):
        drafter.check_target(target.config)
        check_assisted_target(target)
        drafter.use_target_embeddings(target)
        self.drafter, self.device = drafter, drafter.device
        self.settings = settings if settings is not None else DraftingSettings.resolve(generation_config, drafter)
        self.layer_ids = list(drafter.config.target_layer_ids)
        # The target is asked for just the captured layers (indices into its `hidden_states`); for all of them when
        # the caller asked for hidden states in the output.
        self.hidden_request = True if generation_config.output_hidden_states else self.layer_ids
        self.max_length = generation_config.max_length
        self.do_sample = bool(generation_config.do_sample)
        self.logits_processor = logits_processor if logits_processor is not None and len(logits_processor) else None
        self.stats = SpeculationStats(policy=self.policy)
        drafter.last_speculation_stats = self.stats
        self.state = DrafterState(drafter, self.stats)
        self.history = None  # ContextHistory, with copy-aware drafting

    @property
    def model_kwargs_overrides(self) -> dict:
        """What the target's verifying forward is asked for (the captured hidden states)."""
        return {"output_hidden_states": self.hidden_request}

    def begin(self, input_ids: torch.Tensor, prefill_outputs, offset: int) -> None:
        """After the prefill (`input_ids` (1, L) now ends with its first token, `offset` positions of left padding):
        feeds the prompt's features, and copies the sequence to the host for context matching."""
        self.state.offset = self.state.num_fed = offset
        if self.settings.copy_tokens:
            self.history = ContextHistory(input_ids[0, offset:].tolist(), self.settings.copy_ngram)  # once per call
        self.timed(self.state.feed, input_ids, prefill_outputs.hidden_states)

    def timed(self, function, *args):
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.stats.drafter_time_s += time.perf_counter() - start

    def context_copy(self, room: int) -> list[int] | None:
        """The continuation of the latest earlier occurrence of the context's suffix (copy-aware drafting)."""
        if self.history is None:
            return None
        return self.history.continuation(min(self.settings.copy_tokens, room))

    def record(self, draft: Draft, accepted: int) -> None:
        """A verified cycle: `accepted` of the draft's candidates were accepted (after the eos / length cut)."""
        self.stats.draft_lengths.append(draft.size)
        self.stats.accepted.append(accepted)

    def emitted(self, tokens: list[int]) -> None:
        """The tokens a cycle appended to the sequence (for the host copy of the context)."""
        if self.history is not None:
            self.history.extend(tokens)


class EagleCandidateGenerator(SpeculativeGenerator):
    """Chains: K draft tokens per cycle (confidence-bounded, growing, or continued from a context copy)."""

    policy = "chain"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s = self.settings
        self.num_assistant_tokens, self.schedule = s.num_assistant_tokens, s.schedule
        self.max_assistant_tokens = max(2 * s.num_assistant_tokens, 8)
        self.confidence_threshold, self.copy_tokens = s.confidence_threshold, s.copy_tokens

    @property
    def num_drafting_tokens(self) -> int:
        """
        The recurrent states a hybrid target must keep per verifying forward: the most candidates one cycle can
        propose, plus one (a verifying forward carries the last accepted token and the candidates; rejecting every
        candidate rolls the recurrent state back to the one after that first token).
        """
        chain = self.num_assistant_tokens if self.schedule == "constant" else self.max_assistant_tokens
        copy = self.copy_tokens + 1 if self.copy_tokens else 0
        return max(chain, copy) + 1

    # ------------------------------------------------------------------ propose

    @torch.no_grad()
    def propose(self, input_ids: torch.Tensor) -> Draft | None:
        """Up to K candidates after `input_ids` (1, L); None when the length budget leaves no room."""
        room = self.max_length - input_ids.shape[1] - 1
        k = min(self.num_assistant_tokens, room)
        if k <= 0:
            return None
        copy = self.context_copy(room)
        copy = torch.tensor(copy, device=self.device) if copy else None
        return self.timed(self._draft, input_ids, k, copy)

    def _draft(self, input_ids, k, copy=None):
        """
        Drafts up to k tokens. With a confidence threshold the chain stops after a token whose probability under the
        drafter's (processed) distribution is below it. With `copy` (the continuation of an n-gram match of the
        context): when the drafter's largest probability is below the confidence threshold the candidates are the
        copy; otherwise, when its pick equals the copy's first token, they are that pick and the rest of the copy;
        otherwise the chain. Both rules look only at the draft side (the drafter's own distribution, the tokens
        drawn from it and the context), so in sampling they are stopping times of the draft: every verified
        position is still accepted with min(1, p/q) and resampled from norm(max(0, p - q)) — q is one-hot for a
        copied token — or taken as the bonus token from p, and each emitted token keeps the target's distribution.
        """
        ids = input_ids.to(self.device)
        logits, hidden = self.state.logits, self.state.hidden
        picked, processed = [], []
        for step in range(k):
            token, full_logits, probability = self._pick(ids, logits)  # (1, 1) target id
            if step == 0 and copy is not None:
                if probability is not None and self._top_probability(full_logits, probability) < self.confidence_threshold:
                    # The drafter is unsure whatever it drew: propose the whole copy (a deterministic proposal).
                    return self._with_copy(picked, copy, processed)
                if int(token) == int(copy[0]) and len(copy) > 1:  # the pick agrees with the copy: continue it
                    if full_logits is not None:
                        processed.append(full_logits)
                    return self._with_copy([token[0]], copy[1:], processed)
            picked.append(token[0])
            if self.do_sample or self.logits_processor is not None:  # (only processors read the drafted prefix)
                ids = torch.cat([ids, token], dim=-1)
            if full_logits is not None:
                processed.append(full_logits)
            if step == k - 1 or (probability is not None and probability.item() < self.confidence_threshold):
                break
            out = self.state.step(token, hidden, depth=step + 1)
            logits, hidden = out.logits[:, -1], out.next_hidden
        return Draft(torch.cat(picked), torch.cat(processed) if self.do_sample else None)

    def _with_copy(self, picked, copy, processed):
        """The candidates `picked` followed by the copied tokens (q one-hot on each when sampling)."""
        self.stats.copied_cycles += 1
        if self.do_sample:
            processed.extend(self._one_hot_logits(t) for t in copy)
        tokens = torch.cat([*picked, copy]) if picked else copy
        return Draft(tokens, torch.cat(processed) if self.do_sample else None)

    @staticmethod
    def _top_probability(full_logits, pick_probability):
        """The drafter's largest probability at this position (does not depend on a sampled pick)."""
        if full_logits is None:  # greedy: the pick is the argmax
            return float(pick_probability)
        return float(full_logits.float().softmax(-1).max())

    def _one_hot_logits(self, token):
        """(1, V) logits of the deterministic proposal of a copied token (q = 1 on it)."""
        logits = torch.full((1, self.drafter.config.vocab_size), float("-inf"), device=self.device)
        logits[0, token] = 0.0
        return logits

    def _pick(self, ids, draft_logits):
        """
        Chooses the next draft token from (1, D) logits. Returns it as a target id (1, 1); when sampling, the processed
        full-vocabulary logits it was drawn from (what speculative sampling's q must be); and, with a confidence
        threshold, its probability under the distribution it was picked from (else None).
        """
        want_probability = self.confidence_threshold > 0
        if not self.do_sample and self.logits_processor is None:
            best = draft_logits.argmax(-1, keepdim=True)
            probability = draft_logits.float().softmax(-1).gather(-1, best) if want_probability else None
            return best + self.drafter.d2t[best], None, probability
        full = self.drafter.to_target_logits(draft_logits.float())  # (1, V), -inf outside the draft vocab
        if self.logits_processor is not None:
            full = self.logits_processor(ids, full)
        probs = full.softmax(-1) if self.do_sample or want_probability else None
        token = torch.multinomial(probs, num_samples=1) if self.do_sample else full.argmax(-1, keepdim=True)
        probability = probs.gather(-1, token) if want_probability else None
        return token, (full if self.do_sample else None), probability

    # ------------------------------------------------------------------ verify, accept, update

    def verify_inputs(self, input_ids: torch.Tensor, draft: Draft, context) -> dict:
        """The target's inputs for [bonus, c_1..c_n]: ids (1, n + 1), positions (1, n + 1), the 2D mask if padded."""
        block = torch.cat([input_ids[:, -1:], draft.tokens.to(input_ids.device)[None]], dim=-1)  # (1, n + 1)
        return {
            "input_ids": block,
            "position_ids": context.positions(block.shape[1]),  # (1, n + 1)
            "attention_mask": context.mask_2d(block.shape[1]),  # (1, L - 1 + n + 1) or None
        }

    def accept(self, input_ids: torch.Tensor, draft: Draft, logits: torch.Tensor, choose):
        """
        `logits` (n + 1, V): the target's rows for [bonus, c_1..c_n]. Returns (emitted token ids (host list), the
        processed rows they were chosen from (None: the raw rows, no processors), None for the path: chains keep a
        prefix).
        Greedy without processors: one host read. Sampling: standard speculative sampling (accept c_i with
        min(1, p/q), resample the first rejected position from norm(max(0, p - q)), else a bonus from p).
        """
        n = draft.size
        tokens = draft.tokens.to(logits.device)
        if not self.do_sample and self.logits_processor is None:
            choice = logits.argmax(-1)  # (n + 1,) exact in the target's dtype
            accepted = (tokens == choice[:n]).cumprod(0).sum()
            packed = torch.cat([accepted[None], choice]).tolist()  # the cycle's one host read
            n_accepted = packed[0]
            return packed[1 : n_accepted + 2], None, None  # (processed rows = the raw rows)
        rows = logits.float()
        prefix = torch.cat([input_ids, tokens[None]], dim=-1)
        length = input_ids.shape[1]
        processed = torch.cat([choose.process(prefix[:, : length + i], rows[i : i + 1]) for i in range(n + 1)])
        if not self.do_sample:
            choice = processed.argmax(-1)
            accepted = (tokens == choice[:n]).cumprod(0).sum()
            packed = torch.cat([accepted[None], choice]).tolist()
            return packed[1 : packed[0] + 2], processed[: packed[0] + 1], None
        p = processed.softmax(-1)  # (n + 1, V)
        q = draft.q_logits.to(p.device).float().softmax(-1)  # (n, V)
        rows_n = torch.arange(n, device=p.device)
        ratio = p[rows_n, tokens] / q[rows_n, tokens]
        accepted = (torch.rand_like(ratio) > ratio).cumsum(0).lt(1).sum()  # leading accepts
        # The row the next token is drawn from, selected on the device: norm(max(0, p - q)) at the first rejection,
        # p after the last candidate.
        q_next = torch.cat([q, torch.zeros_like(p[:1])]).index_select(0, accepted[None])  # (1, V)
        residual = (p.index_select(0, accepted[None]) - q_next).clamp(min=0)
        next_token = torch.multinomial(residual / residual.sum(-1, keepdim=True), 1)[0]  # (1,)
        packed = torch.cat([accepted[None], tokens, next_token]).tolist()
        n_accepted = packed[0]
        emitted = packed[1 : 1 + n_accepted] + [packed[-1]]
        return emitted, processed[: n_accepted + 1], None

    def update(self, input_ids: torch.Tensor, draft: Draft, accepted: int, path, outputs, cache) -> None:
        """After `accepted` of the draft's n candidates: the target's cache keeps the bonus and the accepted tokens,
        the drafter is fed their features (`input_ids` now ends with the new bonus token)."""
        rejected = draft.size - accepted
        if rejected > 0:
            cache.crop(-rejected)
        self.timed(self.state.feed, input_ids, outputs.hidden_states)

    def record(self, draft: Draft, accepted: int) -> None:
        super().record(draft, accepted)
        if self.schedule != "constant":
            # Grow after a fully accepted draft, shrink after a rejection (transformers' "heuristic" rule).
            if accepted == draft.size:
                self.num_assistant_tokens = min(self.num_assistant_tokens + 2, self.max_assistant_tokens)
            else:
                self.num_assistant_tokens = max(1, self.num_assistant_tokens - 1)
            if self.schedule == "heuristic":  # persistent across generate calls
                self.drafter.generation_config.num_assistant_tokens = self.num_assistant_tokens


# ---------------------------------------------------------------------- transformers versions


def check_transformers_version(version: str | None = None) -> None:
    """
    Warns (one log line) when the installed transformers is outside the tested range, and raises a one-line
    RuntimeError when something the speculation loop relies on is missing from it (a cheap check of names and
    signatures: no source is read).
    """
    version = Version(version or transformers.__version__)
    if not _TESTED_MIN <= version < _TESTED_END:
        logger.warning(
            "hf-eagle31 drafters are tested with transformers%s; installed transformers %s is outside that range "
            "(speculative decoding may fail): pip install 'transformers%s'", TESTED_TRANSFORMERS, version,
            TESTED_TRANSFORMERS,
        )
    gaps = door_gaps()
    if gaps:
        raise RuntimeError(_incompatible(f"it lacks {', '.join(gaps)}"))


# What the speculation loop uses of transformers, by name (checked at install; `door_gaps` names what is missing).
_DOOR_PARAMETERS = ("input_ids", "logits_processor", "stopping_criteria", "generation_config", "assistant_model")


def door_gaps() -> list[str]:
    """What the installed transformers lacks of what the door and the loop use (empty when all is there)."""
    import inspect

    from transformers import GenerationConfig
    from transformers.cache_utils import Cache
    from transformers.generation.utils import GenerationMixin

    gaps = []
    loop = getattr(GenerationMixin, "_assisted_decoding", None)
    if loop is None:
        gaps.append("GenerationMixin._assisted_decoding")
    else:
        parameters = inspect.signature(loop).parameters
        gaps += [f"GenerationMixin._assisted_decoding({p}=...)" for p in _DOOR_PARAMETERS if p not in parameters]
    needed = {
        "GenerationMixin.prepare_inputs_for_generation": getattr(GenerationMixin, "prepare_inputs_for_generation", None),
        "GenerationConfig._get_default_generation_params": getattr(GenerationConfig, "_get_default_generation_params", None),
        "Cache.crop": getattr(Cache, "crop", None),
        "Cache.activate_past_recording": getattr(Cache, "activate_past_recording", None),
        "Cache.get_mask_sizes": getattr(Cache, "get_mask_sizes", None),
    }
    return gaps + [name for name, present in needed.items() if present is None]


def stateful_targets_supported() -> bool:
    """Whether the installed transformers rolls back the recurrent states of hybrid / linear-attention targets."""
    from transformers.cache_utils import Cache

    return hasattr(Cache, "get_recurrent_states_to_keep")


def check_assisted_target(target) -> None:
    """
    One-line error for a target the installed transformers cannot verify drafts on: a stateful (recurrent or hybrid
    linear-attention) model before transformers 5.25.
    """
    if getattr(target, "_is_stateful", False) and not stateful_targets_supported():
        raise ValueError(
            f"{type(target).__name__} keeps recurrent states, and transformers {transformers.__version__} cannot roll "
            "them back after a rejected draft: speculative decoding on this target needs transformers >= 5.25, "
            f"pip install 'transformers{TESTED_TRANSFORMERS}' (with 5.25 or newer)."
        )


def _incompatible(what):
    return (
        f"transformers {transformers.__version__} cannot run EAGLE drafting ({what}): install a tested release, "
        f"pip install 'transformers{TESTED_TRANSFORMERS}'."
    )
