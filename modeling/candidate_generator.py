# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
EAGLE chain drafting inside `target.generate(**inputs, assistant_model=drafter)`.

One cycle of transformers' assisted loop, as this generator sees it:

    target forward on [bonus, c_1..c_K]  -> hidden_states (we request only `target_layer_ids`)
    n accepted                           -> features of positions bonus..c_n are valid (n + 1 of them)
    get_candidates:
        crop the drafter cache to the positions covered by target features (drops last cycle's draft steps)
        feed the n + 1 new positions (token x_{p+1}, features g_p) as one block        -> logits, hidden
        draft K tokens: pick from the last logits, then K - 1 chain steps (token, own hidden state)

The first call of the loop returns no candidates, so that the target prefills the prompt and hands us its
features (the same protocol transformers' own MTP / DFlash generators use).

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import ast
import functools
import inspect
import logging
import textwrap
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import transformers
from packaging.version import Version
from transformers import GenerationConfig
from transformers.cache_utils import DynamicCache
from transformers.generation.candidate_generator import CandidateGenerator


if TYPE_CHECKING:  # annotations only
    from transformers import LogitsProcessorList, PreTrainedModel


DEFAULT_NUM_DRAFT_TOKENS = 6

# The transformers releases this code is tested with (pyproject.toml declares the same range; CI runs both ends).
# It wraps a private method of transformers' generation loop, so a release outside the range may break it.
TESTED_TRANSFORMERS = ">=5.23,<5.26"
_TESTED_MIN, _TESTED_END = Version("5.23.0"), Version("5.26.0.dev0")

logger = logging.getLogger("hf_eagle31.modeling")


@dataclass
class SpeculationStats:
    """
    Statistics of one `generate` call, left on the drafter as `drafter.last_speculation_stats`.

    target_forwards: every target forward of the call (the prefill included).
    draft_lengths / accepted: per speculation cycle (a target forward that verified >= 1 candidate), the number of
        candidates proposed and accepted.
    tau: mean tokens per verifying target forward, the bonus token counted: mean(accepted + 1).
    acceptance_per_depth[d-1]: share of cycles that drafted >= d tokens in which the d-th was accepted.
    conditional_acceptance_per_depth[d-1]: the same among cycles that also accepted the first d-1 drafts.

    These are the one definition of tau and acceptance in hf-eagle31: evaluation, bench and drift pool their cycles
    into one `SpeculationStats` (`SpeculationStats.pooled`) and read them here. `tau_from_forwards` gives tau from a
    forward log, for drafting methods that keep no stats (HF prompt lookup).
    """

    target_forwards: int = 0
    draft_lengths: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    drafter_forwards: int = 0
    drafter_time_s: float = 0.0
    copied_cycles: int = 0  # cycles whose candidates continued an n-gram match of the context

    @property
    def cycles(self) -> int:
        return len(self.accepted)

    @property
    def tau(self) -> float | None:
        if not self.accepted:
            return None
        return sum(a + 1 for a in self.accepted) / len(self.accepted)

    @property
    def drafted_per_cycle(self) -> float | None:
        """Mean candidates proposed per cycle (what a confidence bound or a copy changes)."""
        return sum(self.draft_lengths) / len(self.draft_lengths) if self.draft_lengths else None

    @property
    def wasted_draft_tokens(self) -> int:
        """Candidates proposed and then rejected: each cost a drafter step (or a copy) and a verified position."""
        return sum(self.draft_lengths) - sum(self.accepted)

    @property
    def acceptance_per_depth(self) -> list[float | None]:
        depth = max(self.draft_lengths, default=0)
        rates = []
        for d in range(1, depth + 1):
            drafted = sum(1 for k in self.draft_lengths if k >= d)
            hits = sum(1 for k, a in zip(self.draft_lengths, self.accepted) if k >= d and a >= d)
            rates.append(hits / drafted if drafted else None)
        return rates

    @property
    def conditional_acceptance_per_depth(self) -> list[float | None]:
        rates = []  # P(depth d accepted | depth d - 1 accepted)
        for d in range(1, max(self.draft_lengths, default=0) + 1):
            reached = [a for k, a in zip(self.draft_lengths, self.accepted) if k >= d and a >= d - 1]
            rates.append(sum(1 for a in reached if a >= d) / len(reached) if reached else None)
        return rates

    @classmethod
    def pooled(cls, stats_list: "list[SpeculationStats]") -> "SpeculationStats":
        """One `SpeculationStats` over the cycles of several (e.g. one per prompt), in order."""
        return cls(
            target_forwards=sum(s.target_forwards for s in stats_list),
            draft_lengths=[k for s in stats_list for k in s.draft_lengths],
            accepted=[a for s in stats_list for a in s.accepted],
            drafter_forwards=sum(s.drafter_forwards for s in stats_list),
            drafter_time_s=sum(s.drafter_time_s for s in stats_list),
            copied_cycles=sum(s.copied_cycles for s in stats_list),
        )

    def to_dict(self) -> dict:
        return {
            "target_forwards": self.target_forwards,
            "cycles": self.cycles,
            "tau": self.tau,
            "acceptance_per_depth": self.acceptance_per_depth,
            "draft_lengths": list(self.draft_lengths),
            "accepted": list(self.accepted),
            "drafter_forwards": self.drafter_forwards,
            "drafter_time_s": self.drafter_time_s,
            "copied_cycles": self.copied_cycles,
            "drafted_per_cycle": self.drafted_per_cycle,
            "wasted_draft_tokens": self.wasted_draft_tokens,
        }


def tau_from_forwards(candidates_per_forward: list[int], new_tokens: int) -> float | None:
    """
    Mean tokens per verifying target forward (the bonus counted), from a generate call's forward log. Forwards that
    verified no candidate produced one token each; the others produced the rest. Equals `SpeculationStats.tau` for
    the drafter, and gives the same statistic for HF prompt lookup, which keeps no stats of its own.
    """
    cycles = sum(1 for c in candidates_per_forward if c > 0)
    if cycles == 0:
        return None
    plain = len(candidates_per_forward) - cycles
    return (new_tokens - plain) / cycles


class EagleCandidateGenerator(CandidateGenerator):
    """Drafts with an EAGLE-3 / EAGLE-3.1 / MTP drafter fed by the target's captured hidden states."""

    requires_model_outputs = True
    model_kwargs_overrides: dict  # what the target's verifying forward is asked for (the captured hidden states)

    def __init__(
        self,
        drafter: "PreTrainedModel",  # a `DrafterPreTrainedModel` (drafter_common.py, which imports this file)
        target: "PreTrainedModel",
        generation_config: GenerationConfig,
        input_ids: torch.LongTensor,
        logits_processor: "LogitsProcessorList | None" = None,
        model_kwargs: dict | None = None,
        **_,
    ):
        if input_ids.shape[0] != 1:
            raise ValueError(
                f"EAGLE speculative decoding runs inside transformers' assisted-generation loop, which supports batch "
                f"size 1 only; got batch size {input_ids.shape[0]}: call generate once per prompt (or serve batches "
                "with vLLM/SGLang, which read this drafter's checkpoint)."
            )
        drafter.check_target(target.config)
        check_assisted_target(target)
        drafter.use_target_embeddings(target)
        self.drafter = drafter
        self.device = drafter.device
        self.layer_ids = list(drafter.config.target_layer_ids)
        # Ask the target for just the captured layers (indices into its `hidden_states`).
        # (all of them when the caller asked for hidden states in the output: transformers then returns every layer)
        wanted = True if generation_config.output_hidden_states else self.layer_ids
        self.model_kwargs_overrides = {"output_hidden_states": wanted}
        self.max_length = generation_config.max_length
        self.do_sample = bool(generation_config.do_sample)
        self.logits_processor = logits_processor if logits_processor is not None and len(logits_processor) else None

        # A value passed to `generate` wins; transformers fills unset fields with its global defaults (K = 20,
        # "constant"), which are taken to mean "unset" so that the drafter's own generation config applies.
        own, unset = drafter.generation_config, GenerationConfig._get_default_generation_params()
        k = _explicit(generation_config.num_assistant_tokens, unset.get("num_assistant_tokens"))
        if k is not None and int(k) < 1:
            raise ValueError(f"num_assistant_tokens={k}: the draft length must be >= 1 (the most tokens a cycle drafts).")
        self.num_assistant_tokens = int(k or own.num_assistant_tokens or DEFAULT_NUM_DRAFT_TOKENS)
        schedule = _explicit(generation_config.num_assistant_tokens_schedule, unset.get("num_assistant_tokens_schedule"))
        self.schedule = schedule or own.num_assistant_tokens_schedule or "constant"
        if self.schedule not in ("constant", "heuristic", "heuristic_transient"):
            raise ValueError(
                f"num_assistant_tokens_schedule={self.schedule!r} is not supported by EAGLE drafting: use 'constant', "
                "'heuristic' or 'heuristic_transient'."
            )
        self.max_assistant_tokens = max(2 * self.num_assistant_tokens, 8)
        # Confidence-bounded chains: stop drafting after a token whose draft probability is below the threshold
        # (0 or None = always draft K). Unset in `generate` (transformers' global default 0.4 counts as unset) means
        # the drafter's own generation config.
        threshold = _explicit(
            generation_config.assistant_confidence_threshold, unset.get("assistant_confidence_threshold")
        )
        if threshold is None:
            threshold = getattr(own, "assistant_confidence_threshold", None)
        if threshold is not None and not 0.0 <= float(threshold) < 1.0:
            raise ValueError(
                f"assistant_confidence_threshold={threshold} must lie in [0, 1): the chain stops after a draft token "
                "whose drafter probability is below it (0 = always draft num_assistant_tokens)."
            )
        self.confidence_threshold = float(threshold or 0.0)
        # Copy-aware drafting: `prompt_lookup_num_tokens=N` (with this drafter as assistant) lets a cycle propose up
        # to N tokens that continue the latest match of the context's last `max_matching_ngram_size` tokens (2 by
        # default, down to 1), when the drafter is unsure or its first pick agrees with the copy (see `_draft`).
        copy_tokens = generation_config.prompt_lookup_num_tokens
        if copy_tokens is None:
            copy_tokens = getattr(own, "prompt_lookup_num_tokens", None)
        ngram = generation_config.max_matching_ngram_size or getattr(own, "max_matching_ngram_size", None) or 2
        if copy_tokens is not None and (int(copy_tokens) < 0 or int(ngram) < 1):
            raise ValueError(
                f"prompt_lookup_num_tokens={copy_tokens} / max_matching_ngram_size={ngram}: copy-aware drafting needs "
                "a number of tokens >= 0 (0 = off) and an n-gram size >= 1."
            )
        self.copy_tokens, self.copy_ngram = int(copy_tokens or 0), int(ngram)

        self.cache = DynamicCache()
        self.num_fed = 0  # positions whose target features are in the drafter cache
        self.last_logits = None  # (1, D) logits at the last fed position
        self.last_hidden = None  # (1, 1, H) hidden state handed to the next chain step
        self.last_draft_length = 0
        self.stats = SpeculationStats()
        drafter.last_speculation_stats = self.stats

    # ------------------------------------------------------------------ the protocol transformers calls

    @property
    def num_drafting_tokens(self) -> int:
        """
        The recurrent states a hybrid target must keep per verifying forward: the most candidates one cycle can propose
        in this `generate` call, plus one (transformers >= 5.25 reads it once, before the first cycle, to size the
        history that targets with linear-attention layers keep for rolling back a rejected draft). A chain proposes at most K (up to `max_assistant_tokens` under a growing schedule); a copy-aware cycle
        at most the drafter's pick plus `copy_tokens` copied tokens.
        """
        chain = self.num_assistant_tokens if self.schedule == "constant" else self.max_assistant_tokens
        copy = self.copy_tokens + 1 if self.copy_tokens else 0
        # + 1: a verifying forward carries the last accepted token and the candidates, and rejecting every candidate
        # rolls the recurrent state back to the one after that first token (without it a fully rejected cycle of
        # maximal length restores the state before the forward: greedy output then differs from plain decoding).
        return max(chain, copy) + 1

    @torch.no_grad()
    def get_candidates(
        self,
        input_ids: torch.LongTensor,
        model_kwargs: dict | None = None,
        model_outputs=None,
        is_first_iteration: bool = False,
        **kwargs,
    ) -> tuple[torch.LongTensor, torch.FloatTensor | None]:
        """(input_ids + candidates, their processed full-vocabulary logits when sampling, else None)."""
        self.last_draft_length = 0
        if is_first_iteration:
            return input_ids, None  # let the target prefill the prompt first
        start = time.perf_counter()
        self._feed_target_features(input_ids, model_outputs)
        room = self.max_length - input_ids.shape[1] - 1
        k = min(self.num_assistant_tokens, room)
        if k <= 0:
            self.stats.drafter_time_s += time.perf_counter() - start
            return input_ids, None
        copy = self._context_match(input_ids[0], room) if self.copy_tokens else None
        candidate_ids, candidate_logits = self._draft(input_ids, k, copy)
        self.last_draft_length = candidate_ids.shape[1] - input_ids.shape[1]
        self.stats.drafter_time_s += time.perf_counter() - start
        return candidate_ids.to(input_ids.device), candidate_logits

    def update_candidate_strategy(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, num_matches: int | torch.Tensor
    ) -> None:
        num_matches = int(num_matches)
        self.stats.target_forwards += 1
        if self.last_draft_length == 0:
            return
        self.stats.draft_lengths.append(self.last_draft_length)
        self.stats.accepted.append(num_matches)
        if self.schedule != "constant":
            # Grow after a fully accepted draft, shrink after a rejection (transformers' "heuristic" rule).
            if num_matches == self.last_draft_length:
                self.num_assistant_tokens = min(self.num_assistant_tokens + 2, self.max_assistant_tokens)
            else:
                self.num_assistant_tokens = max(1, self.num_assistant_tokens - 1)
            if self.schedule == "heuristic":  # persistent across generate calls
                self.drafter.generation_config.num_assistant_tokens = self.num_assistant_tokens

    # ------------------------------------------------------------------ drafting

    def _feed_target_features(self, input_ids, model_outputs):
        if model_outputs is None or getattr(model_outputs, "hidden_states", None) is None:
            raise ValueError("the target returned no hidden states; EAGLE drafting needs `output_hidden_states`.")
        hidden_states = model_outputs.hidden_states
        new = input_ids.shape[1] - 1 - self.num_fed  # the last token (the bonus) has no features yet
        features = []
        for i in self.layer_ids:
            h = hidden_states[i]
            if h is None or h.shape[1] < new:
                raise ValueError(f"the target did not return hidden_states[{i}] for the {new} verified positions.")
            features.append(h[:, :new].to(self.device))
        # Draft-step entries of the previous cycle are never kept: crop back to the feature-covered prefix.
        extra = self.cache.get_seq_length() - self.num_fed
        if extra > 0:
            self.cache.crop(-extra)
        tokens = input_ids[:, self.num_fed + 1 : self.num_fed + 1 + new].to(self.device)  # x_{p+1} for each p
        positions = torch.arange(self.num_fed, self.num_fed + new, device=self.device)[None]
        out = self.drafter(
            tokens, target_hidden_states=features, position_ids=positions, cache=self.cache, logits_to_keep=1
        )
        self.stats.drafter_forwards += 1
        self.num_fed += new
        self.last_logits, self.last_hidden = out.logits[:, -1], out.next_hidden[:, -1:]

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
        logits, hidden = self.last_logits, self.last_hidden
        position = self.num_fed - 1
        processed = []
        for step in range(k):
            token, full_logits, probability = self._pick(ids, logits)
            if step == 0 and copy is not None:
                if probability is not None and self._top_probability(full_logits, probability) < self.confidence_threshold:
                    # The drafter is unsure whatever it drew: propose the whole copy (a deterministic proposal).
                    return self._append_copy(ids, copy, processed)
                if int(token) == int(copy[0]) and len(copy) > 1:  # the pick agrees with the copy: continue it
                    if full_logits is not None:
                        processed.append(full_logits)
                    return self._append_copy(torch.cat([ids, token], dim=-1), copy[1:], processed)
            ids = torch.cat([ids, token], dim=-1)
            if full_logits is not None:
                processed.append(full_logits)
            if step == k - 1 or (probability is not None and probability.item() < self.confidence_threshold):
                break
            position += 1
            out = self.drafter(
                token, hidden_states=hidden, position_ids=torch.tensor([[position]], device=self.device),
                cache=self.cache,
            )
            self.stats.drafter_forwards += 1
            logits, hidden = out.logits[:, -1], out.next_hidden
        candidate_logits = torch.stack(processed, dim=1) if self.do_sample else None  # (1, k, V)
        return ids, candidate_logits

    def _context_match(self, ids, room):
        """
        The tokens that followed the latest earlier occurrence of the context's last n tokens (n =
        `copy_ngram` down to 1), at most `copy_tokens` and `room` of them; None without a match.
        """
        length = ids.shape[0]
        for n in range(min(self.copy_ngram, length - 1), 0, -1):
            windows = ids.unfold(0, n, 1)[:-1]  # every earlier n-gram (the suffix itself excluded)
            hits = (windows == ids[-n:]).all(-1).nonzero()
            if hits.numel():
                start = int(hits[-1]) + n
                return ids[start : start + min(self.copy_tokens, room)]
        return None

    def _append_copy(self, ids, copy, processed):
        """Appends copied tokens to the candidates (q one-hot on each when sampling); returns `_draft`'s result."""
        self.stats.copied_cycles += 1
        copy = copy.to(self.device)
        if self.do_sample:
            processed.extend(self._one_hot_logits(t) for t in copy)
        return torch.cat([ids, copy[None]], dim=-1), (torch.stack(processed, dim=1) if self.do_sample else None)

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
        Chooses the next draft token from (1, D) logits. Returns it as a target id; when sampling, the processed
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


def _explicit(value, global_default):
    return None if value == global_default else value


# ---------------------------------------------------------------------- transformers versions


def check_transformers_version(version: str | None = None) -> None:
    """
    Warns (one log line) when the installed transformers is outside the tested range, and raises a one-line
    RuntimeError when something EAGLE drafting relies on is missing from it.
    """
    version = Version(version or transformers.__version__)
    if not _TESTED_MIN <= version < _TESTED_END:
        logger.warning(
            "hf-eagle31 drafters are tested with transformers%s; installed transformers %s is outside that range "
            "(speculative decoding may fail): pip install 'transformers%s'", TESTED_TRANSFORMERS, version,
            TESTED_TRANSFORMERS,
        )
    from transformers.generation.utils import GenerationMixin

    needed = {
        "GenerationMixin._get_candidate_generator": getattr(GenerationMixin, "_get_candidate_generator", None),
        "the assisted loop's `requires_model_outputs` protocol": _assisted_loop_passes_model_outputs(GenerationMixin),
        "GenerationConfig._get_default_generation_params": getattr(GenerationConfig, "_get_default_generation_params", None),
        "DynamicCache.crop": getattr(DynamicCache, "crop", None),
    }
    missing = [name for name, present in needed.items() if not present]
    if missing:
        raise RuntimeError(_incompatible(f"it lacks {', '.join(missing)}"))


def assisted_loop_protocol(mixin=None) -> dict[str, list[tuple[int, tuple[str, ...]]]] | None:
    """
    What the installed transformers' assisted loop (`GenerationMixin._assisted_decoding`) needs from every candidate
    generator, read from its source: member name -> the calls made to it, each as (positional argument count,
    keyword names); an attribute that is only read maps to []. Reads under an `isinstance(candidate_generator, ...)`
    or `hasattr(...)` guard, and `getattr(candidate_generator, name, default)`, are optional and left out. None when
    the installed release ships no source to read.
    """
    from transformers.generation.utils import GenerationMixin

    loop = getattr(mixin or GenerationMixin, "_assisted_decoding", None)
    return {} if loop is None else _read_protocol(loop)


@functools.lru_cache(maxsize=8)
def _read_protocol(loop):
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(loop)))
    except (OSError, TypeError, SyntaxError):  # no source shipped (e.g. a frozen install): nothing to check against
        return None
    reader = _GeneratorReads("candidate_generator")
    reader.visit(tree)
    return reader.members


class _GeneratorReads(ast.NodeVisitor):
    """Collects the unguarded member reads and calls on one variable (see `assisted_loop_protocol`)."""

    def __init__(self, name: str):
        self.name, self.members, self.guarded = name, {}, 0

    def _is_ours(self, node) -> bool:
        return isinstance(node, ast.Name) and node.id == self.name

    def _has_guard(self, node) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("isinstance", "hasattr")
            and n.args and self._is_ours(n.args[0])
            for n in ast.walk(node)
        )

    def _visit_guarded(self, nodes, guarded):
        self.guarded += guarded
        for node in nodes:
            self.visit(node)
        self.guarded -= guarded

    def visit_If(self, node):
        self.visit(node.test)
        self._visit_guarded(node.body, self._has_guard(node.test))
        self._visit_guarded(node.orelse, False)

    visit_While = visit_If

    def visit_IfExp(self, node):
        self.visit(node.test)
        self._visit_guarded([node.body], self._has_guard(node.test))
        self.visit(node.orelse)

    def visit_BoolOp(self, node):  # `isinstance(g, X) and g.member`: operands after a guard are guarded
        guarded = False
        for value in node.values:
            self._visit_guarded([value], guarded)
            guarded = guarded or self._has_guard(value)

    def visit_Call(self, node):
        func = node.func
        if self._is_ours(getattr(func, "value", None)) and isinstance(func, ast.Attribute) and not self.guarded:
            calls = self.members.setdefault(func.attr, [])
            calls.append((len(node.args), tuple(k.arg for k in node.keywords if k.arg)))
            self._visit_guarded(node.args + [k.value for k in node.keywords], False)
            return
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) == 2 and not self.guarded:
            target, name = node.args
            if self._is_ours(target) and isinstance(name, ast.Constant) and isinstance(name.value, str):
                self.members.setdefault(name.value, [])
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if self._is_ours(node.value) and isinstance(node.ctx, ast.Load) and not self.guarded:
            self.members.setdefault(node.attr, [])
        self.generic_visit(node)


def protocol_gaps(generator, protocol=None) -> list[str]:
    """
    What `generator` (an instance, or a class whose instance attributes are declared as class annotations) lacks of
    the installed assisted loop's protocol: a missing member, or a call its signature does not accept.
    """
    protocol = assisted_loop_protocol() if protocol is None else protocol
    cls = generator if isinstance(generator, type) else type(generator)
    declared = {n for klass in cls.__mro__ for n in getattr(klass, "__annotations__", {})}
    gaps = []
    for name, calls in sorted((protocol or {}).items()):
        if not (hasattr(generator, name) or name in declared):
            gaps.append(f"`{name}`")
            continue
        member = inspect.getattr_static(cls, name, None)
        if not callable(member):
            continue
        signature = inspect.signature(member)
        for positional, keywords in calls:
            try:
                signature.bind(None, *[None] * positional, **dict.fromkeys(keywords))
            except TypeError:
                gaps.append(f"`{name}({', '.join(['...'] * positional + [k + '=' for k in keywords])})`")
    return gaps


def builtin_surface_gaps(cls) -> list[str]:
    """The public members that every built-in candidate generator of the installed transformers adds to the base
    `CandidateGenerator` and `cls` lacks (a second reading of the protocol, independent of the loop's source)."""
    import transformers.generation.candidate_generator as builtin

    classes = [c for c in vars(builtin).values() if isinstance(c, type) and issubclass(c, CandidateGenerator)]
    surfaces = [{n for n in dir(c) if not n.startswith("_")} for c in classes if c is not CandidateGenerator]
    shared = set.intersection(*surfaces) - set(dir(CandidateGenerator)) if surfaces else set()
    return [f"`{name}`" for name in sorted(shared - set(dir(cls)))]


def protocol_message(gaps) -> str:
    """The one line naming what the installed assisted loop needs from a candidate generator and the tested range."""
    return _incompatible(f"its assisted loop needs {', '.join(gaps)} from a candidate generator, which this drafter's "
                         "code does not provide")


def check_generator_protocol(generator) -> None:
    """Raises a one-line RuntimeError naming what the installed assisted loop needs and `generator` lacks."""
    gaps = protocol_gaps(generator)
    if gaps:
        raise RuntimeError(protocol_message(gaps))


def _assisted_loop_passes_model_outputs(mixin):
    """Whether the assisted loop hands the target's outputs to generators with `requires_model_outputs`."""
    protocol = assisted_loop_protocol(mixin)
    if protocol is None:  # no source to check against
        return True
    return "requires_model_outputs" in protocol and "model_kwargs_overrides" in protocol


def stateful_targets_supported() -> bool:
    """Whether the installed transformers rolls back the recurrent states of hybrid / linear-attention targets."""
    from transformers.cache_utils import Cache

    return hasattr(Cache, "get_recurrent_states_to_keep")


def check_assisted_target(target) -> None:
    """
    One-line error for a target the installed transformers cannot verify drafts on: a stateful (recurrent or hybrid
    linear-attention) model before transformers 5.25, which raises its own error without naming a fix.
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


# ---------------------------------------------------------------------- dispatch

_EXPECTED_PARAMETERS = ("generation_config", "input_ids", "logits_processor", "model_kwargs", "assistant_model")


def install_generate_hook() -> None:
    """
    Makes `target.generate(..., assistant_model=drafter)` use the drafter's own candidate generator.

    transformers picks candidate generators in `GenerationMixin._get_candidate_generator` and has no public hook,
    so this wraps that method once (idempotent across copies of this file): an assistant exposing
    `get_candidate_generator(...)` gets its own generator, every other call goes to the original unchanged.
    Raises if a transformers release changes the method so that the wrap could silently stop working.
    """
    from transformers.generation.utils import GenerationMixin

    original = GenerationMixin._get_candidate_generator
    if getattr(original, "_hf_eagle31_hook", False):
        return
    check_transformers_version()
    signature = inspect.signature(original)
    missing = [name for name in _EXPECTED_PARAMETERS if name not in signature.parameters]
    if missing:
        raise RuntimeError(_incompatible(f"GenerationMixin._get_candidate_generator no longer takes {missing}"))
    gaps = protocol_gaps(EagleCandidateGenerator)
    if gaps:  # loading still works (training, conversion); `generate` with the drafter raises the same line
        logger.warning(protocol_message(gaps))

    @functools.wraps(original)
    def _get_candidate_generator(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        factory = getattr(call.get("assistant_model"), "get_candidate_generator", None)
        if factory is None:  # (with a drafter, `prompt_lookup_num_tokens` turns on its copy-aware drafting)
            return original(self, *args, **kwargs)
        generator = factory(
            target=self,
            generation_config=call["generation_config"],
            input_ids=call["input_ids"],
            logits_processor=call["logits_processor"],
            model_kwargs=call["model_kwargs"],
        )
        check_generator_protocol(generator)  # one line naming the gap, not an AttributeError deep inside the loop
        return generator

    _get_candidate_generator._hf_eagle31_hook = True
    GenerationMixin._get_candidate_generator = _get_candidate_generator
