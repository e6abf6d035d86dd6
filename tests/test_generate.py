"""`target.generate(**inputs, assistant_model=drafter)`: losslessness, bookkeeping, sampling, errors."""

import itertools
import random

import pytest
import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.generation.utils import GenerationMixin

from hf_eagle31 import Eagle3Drafter, MtpDrafter
from hf_eagle31.modeling.candidate_generator import EagleCandidateGenerator, stateful_targets_supported

from conftest import VARIANTS, make_drafter, tiny_hybrid_target, tiny_target


def _oracle(base_cls):
    class Oracle(base_cls):
        """A real drafter (its cache and features are used as usual) whose logits are replaced by the reference
        continuation: the query at rotary position q proposes token index q + 2, right where `agree(q)` is true."""

        reference = None
        agree = staticmethod(lambda q: True)
        real_calls = None

        def forward(self, input_ids, position_ids=None, logits_to_keep=0, **kwargs):
            out = super().forward(input_ids, position_ids=position_ids, **kwargs)  # logits at every position
            if self.real_calls is not None and kwargs.get("target_hidden_states") is not None:
                feats = torch.cat(list(kwargs["target_hidden_states"]), dim=-1)
                self.real_calls.append((position_ids[0].tolist(), out.logits.clone(), feats.clone()))
            logits = torch.full_like(out.logits, -10.0)
            for col, q in enumerate(position_ids[0].tolist()):
                token = int(self.reference[q + 2]) if q + 2 < len(self.reference) else 0
                if not self.agree(q):
                    token = (token + 1) % self.config.vocab_size
                logits[0, col, token] = 10.0
            out.logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
            return out

    return Oracle


OracleEagle3, OracleMtp = _oracle(Eagle3Drafter), _oracle(MtpDrafter)


def make_oracle(target, variant, reference, agree, **overrides):
    drafter = make_drafter(target, variant, **overrides)
    oracle = (OracleMtp if variant.startswith("mtp") else OracleEagle3)(drafter.config)
    oracle.load_state_dict(drafter.state_dict())
    oracle.embeddings_ready = True
    oracle.reference, oracle.agree = reference[0].tolist(), agree
    return oracle.eval()


def test_one_door_is_installed_and_dispatches(target):
    """Building a drafter opens the one door (a wrap of `_assisted_decoding`); nothing else of transformers' generation
    loop is wrapped, and the stats of each call are fresh."""
    drafter = make_drafter(target)
    assert getattr(GenerationMixin._assisted_decoding, "_hf_eagle31_door", False)
    wrapped = [
        name
        for name, member in vars(GenerationMixin).items()
        if callable(member)
        and hasattr(member, "__wrapped__")
        and any(a.startswith("_hf_eagle31") for a in vars(member))
    ]
    assert wrapped == ["_assisted_decoding"]
    drafter.last_speculation_stats = None
    target.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False, assistant_model=drafter)
    stats = drafter.last_speculation_stats
    assert stats is not None and stats.target_forwards == 5 and stats.policy in ("chain", "tree")


def test_greedy_equals_plain_generate_fuzzed():
    """>= 200 random cases: variants, drafter depths, draft vocabularies, K, schedules, prompt lengths, EOS, short
    budgets."""
    rng = random.Random(1234)
    targets = [tiny_target(seed=s) for s in range(3)]
    checked = 0
    for case in range(216):
        target = targets[case % 3]
        variant = VARIANTS[case % 4]
        prompt = torch.tensor([[rng.randrange(64) for _ in range(rng.randint(1, 20))]])
        max_new = rng.choice([1, 2, 3, 5, 9, 17, 30])
        reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False)
        eos = None
        if rng.random() < 0.3 and reference.shape[1] > prompt.shape[1] + 1:
            eos = int(reference[0, rng.randrange(prompt.shape[1], reference.shape[1])])
            reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False, eos_token_id=eos)
        if case % 2:
            pattern = rng.choice([lambda q: True, lambda q: q % 3 != 0, lambda q: (q * 7) % 5 < 2, lambda q: False])
            drafter = make_oracle(target, variant, reference, pattern)
        else:
            drafter = make_drafter(
                target, variant, draft_vocab_size=rng.choice([None, 40]), seed=case, num_hidden_layers=1 + case // 4 % 2
            )
        out = target.generate(
            prompt,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=eos,
            assistant_model=drafter,
            num_assistant_tokens=rng.randint(1, 8),
            num_assistant_tokens_schedule=rng.choice(["constant", "heuristic_transient"]),
            assistant_confidence_threshold=rng.choice([None, 0.0, 0.05, 0.3, 0.9]),
            prompt_lookup_num_tokens=rng.choice([None, 0, 2, 8]),
        )
        assert torch.equal(out, reference), f"case {case}: {variant} diverged from plain greedy"
        checked += 1
    assert checked >= 200


def test_hybrid_linear_attention_target_stays_exact():
    """A target with linear-attention layers (recurrent states, rolled back by transformers >= 5.25 after a rejected
    draft): chain, confidence, copy and growing schedules, with every acceptance pattern, equal plain greedy. Older
    releases get one line naming the release that supports it."""
    target = tiny_hybrid_target()
    prompt = torch.tensor([[5, 9, 2, 7, 5, 9, 11, 3]])
    if not stateful_targets_supported():
        # transformers < 5.25 refuses stateful targets before the door, in one line of its own (docs/ARCHITECTURE.md,
        # "The door into transformers"); the custom_generate entry reaches ours, naming the release that supports it.
        with pytest.raises(ValueError, match="stateful models") as error:
            target.generate(prompt, max_new_tokens=4, do_sample=False, assistant_model=make_drafter(target))
        assert "\n" not in str(error.value)
        from hf_eagle31.modeling import speculative_generate

        with pytest.raises(ValueError, match=r"keeps recurrent states.*needs transformers >= 5\.25") as error:
            drafter = make_drafter(target)
            target.generate(prompt, max_new_tokens=4, custom_generate=speculative_generate, drafter=drafter)
        assert "\n" not in str(error.value)
        return
    rng = random.Random(7)
    patterns = [lambda q: True, lambda q: False, lambda q: q % 3 != 0, lambda q: (q * 7) % 5 < 2]
    # The logits are compared too: a recurrent state restored one token off changes them by ~1e-3 on this tiny
    # target, often without changing its argmax.
    options = {"max_new_tokens": 20, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}
    for case in range(12):
        prompt = torch.tensor([[rng.randrange(64) for _ in range(rng.randint(2, 12))]])
        reference = target.generate(prompt, **options)
        drafter = make_oracle(target, VARIANTS[case % 4], reference.sequences, patterns[case % 4])
        policy = rng.choice(
            [
                {},
                {"prompt_lookup_num_tokens": 4},
                {"assistant_confidence_threshold": 0.3},
                {"num_assistant_tokens_schedule": "heuristic_transient"},
            ]
        )
        out = target.generate(
            prompt, assistant_model=drafter, num_assistant_tokens=rng.randint(1, 6), **policy, **options
        )
        what = f"case {case} ({policy}) on a hybrid target"
        assert torch.equal(out.sequences, reference.sequences), f"{what}: diverged from plain greedy"
        torch.testing.assert_close(torch.stack(out.logits), torch.stack(reference.logits), rtol=0, atol=1e-5, msg=what)


@pytest.mark.parametrize("variant,depth", [("eagle3", 1), ("mtp-postnorm", 1), ("eagle3.1", 2), ("mtp", 2)])
def test_drafter_cache_matches_full_recompute(target, variant, depth):
    """The features fed after each verification are the target's hidden_states[target_layer_ids] at exactly the
    verified positions, and the drafter's incrementally cached outputs equal a from-scratch prefill: cropping of
    draft-step entries (in every layer's cache) and the feeding of new positions are right."""
    prompt = torch.tensor([[5, 9, 2, 33, 7]])
    reference = target.generate(prompt, max_new_tokens=25, do_sample=False)
    oracle = make_oracle(target, variant, reference, lambda q: q % 4 != 1, num_hidden_layers=depth)
    oracle.real_calls = []
    out = target.generate(prompt, max_new_tokens=25, do_sample=False, assistant_model=oracle, num_assistant_tokens=4)
    assert torch.equal(out, reference)
    stats = oracle.last_speculation_stats
    assert 0 < sum(stats.accepted) < sum(stats.draft_lengths)  # partial acceptance happened
    positions = [p for call in oracle.real_calls for p in call[0]]
    assert positions == list(range(len(positions)))  # every position fed once, in order
    features = torch.cat([c[2] for c in oracle.real_calls], dim=1)
    logits = torch.cat([c[1] for c in oracle.real_calls], dim=1)
    n = len(positions)
    with torch.no_grad():
        hidden = target(out[:, :n], output_hidden_states=True).hidden_states
        full_features = torch.cat([hidden[i] for i in oracle.config.target_layer_ids], dim=-1)
        torch.testing.assert_close(features, full_features, atol=1e-5, rtol=1e-4)
        full = Eagle3Drafter.forward if variant.startswith("eagle") else MtpDrafter.forward
        recomputed = full(oracle, out[:, 1 : n + 1], target_hidden_states=full_features).logits
    torch.testing.assert_close(logits, recomputed, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", ["eagle3.1", "mtp"])
def test_bookkeeping_always_and_never_agree(target, variant):
    prompt, k, m = torch.tensor([[3, 1, 4, 1, 5]]), 3, 4
    max_new = 1 + m * (k + 1)
    reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False)
    always = make_oracle(target, variant, reference, lambda q: True)
    out = target.generate(
        prompt, max_new_tokens=max_new, do_sample=False, assistant_model=always, num_assistant_tokens=k
    )
    stats = always.last_speculation_stats
    assert torch.equal(out, reference)
    assert stats.tau == k + 1 and stats.accepted == [k] * m and stats.target_forwards == 1 + m
    assert stats.acceptance_per_depth == [1.0] * k

    never = make_oracle(target, variant, reference, lambda q: False)
    out = target.generate(prompt, max_new_tokens=6, do_sample=False, assistant_model=never, num_assistant_tokens=k)
    stats = never.last_speculation_stats
    assert torch.equal(out, reference[:, : prompt.shape[1] + 6])
    # prefill + one token per forward; the last forward has no room for candidates
    assert stats.tau == 1.0 and stats.target_forwards == 6 and stats.draft_lengths == [3, 3, 2, 1]
    assert stats.acceptance_per_depth == [0.0, 0.0, 0.0]


def test_heuristic_schedule_grows_and_shrinks(target):
    prompt = torch.tensor([[3, 1, 4]])
    reference = target.generate(prompt, max_new_tokens=40, do_sample=False)
    oracle = make_oracle(target, "eagle3.1", reference, lambda q: q < 20)
    oracle.generation_config.num_assistant_tokens_schedule = "heuristic"
    oracle.generation_config.num_assistant_tokens = 2
    out = target.generate(prompt, max_new_tokens=40, do_sample=False, assistant_model=oracle)
    lengths = oracle.last_speculation_stats.draft_lengths
    assert torch.equal(out, reference)
    assert lengths[:3] == [2, 4, 6] and min(lengths[3:]) < max(lengths)
    assert oracle.generation_config.num_assistant_tokens != 2  # "heuristic" persists across calls


def test_eos_stopping_criteria_and_streamer(target):
    prompt = torch.tensor([[7, 8, 9]])
    reference = target.generate(prompt, max_new_tokens=30, do_sample=False)
    eos = int(reference[0, 12])
    expected = target.generate(prompt, max_new_tokens=30, do_sample=False, eos_token_id=eos)
    oracle = make_oracle(target, "eagle3.1", reference, lambda q: True)

    class Collect(BaseStreamer):
        def __init__(self):
            self.tokens = []

        def put(self, value):
            self.tokens.extend(value.flatten().tolist())

        def end(self):
            pass

    streamer = Collect()
    out = target.generate(
        prompt,
        max_new_tokens=30,
        do_sample=False,
        eos_token_id=eos,
        assistant_model=oracle,
        num_assistant_tokens=5,
        streamer=streamer,
    )
    assert torch.equal(out, expected) and out[0, -1] == eos
    assert streamer.tokens == out[0].tolist()  # prompt first, then every accepted token exactly once

    class StopAtLength(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), input_ids.shape[1] >= 10, dtype=torch.bool)

    out = target.generate(
        prompt,
        max_new_tokens=30,
        do_sample=False,
        assistant_model=oracle,
        num_assistant_tokens=2,
        stopping_criteria=StoppingCriteriaList([StopAtLength()]),
    )
    assert out.shape[1] in range(10, 13) and torch.equal(out, reference[:, : out.shape[1]])


def test_bad_input_errors(target):
    drafter = make_drafter(target)
    for kwargs, what in [
        ({"hidden_size": 48}, "hidden size of 32 but the target has 48"),
        ({"num_hidden_layers": 10}, "layer count of 8 but the target has 10"),
    ]:
        other = tiny_target(**kwargs)
        with pytest.raises(ValueError, match=what):
            other.generate(torch.tensor([[1, 2]]), max_new_tokens=3, assistant_model=drafter)
    wide_vocab = tiny_target(vocab_size=80)
    with pytest.raises(ValueError, match="vocab size of 64 but the target has 80"):
        drafter.check_target(wide_vocab.config)


def _exact_joint(target, prompt, new_tokens, temperature):
    """Exact target distribution over all `new_tokens`-token continuations (tiny vocabulary)."""
    vocab = target.config.vocab_size
    seqs = torch.tensor(list(itertools.product(range(vocab), repeat=new_tokens)))
    full = torch.cat([prompt.expand(len(seqs), -1), seqs], dim=1)
    n = prompt.shape[1]
    with torch.no_grad():
        logp = (target(full).logits[:, n - 1 : n - 1 + new_tokens] / temperature).log_softmax(-1)
    return logp.gather(-1, seqs[..., None]).squeeze(-1).sum(-1).exp().view(*([vocab] * new_tokens))


def _max_pair_chi2(samples, joint):
    """Largest chi-square statistic over adjacent token pairs (25 cells, df = 24) against the exact joint."""
    vocab, depth = joint.shape[0], joint.dim()
    worst = 0.0
    for a in range(depth - 1):
        expected = joint.sum(dim=tuple(i for i in range(depth) if i not in (a, a + 1))).flatten() * len(samples)
        counts = torch.zeros(vocab * vocab)
        for s in samples:
            counts[s[a] * vocab + s[a + 1]] += 1
        worst = max(worst, float(((counts - expected) ** 2 / expected).sum()))
    return worst


@pytest.mark.parametrize("confidence_threshold, copy_tokens", [(None, None), (0.6, 3)])
def test_sampling_keeps_target_distribution(monkeypatch, confidence_threshold, copy_tokens):
    """With do_sample the output distribution is the target's (chi-square, df=24, alpha=0.001 -> 51.2), also when
    chains stop at unsure draft tokens; the same test rejects a generator whose reported draft distribution q is not
    the one it sampled from."""
    target = tiny_target(vocab_size=5, hidden_size=16)
    drafter = make_drafter(target, "eagle3.1")
    with torch.no_grad():
        target.lm_head.weight.mul_(8)  # peaked target ...
        drafter.lm_head.weight.mul_(30)  # ... and a drafter that disagrees with it often
    prompt, temperature = torch.tensor([[1, 3, 2]]), 0.8
    joint = _exact_joint(target, prompt, 4, temperature)

    lengths, copied = [], []

    def sample(n):
        torch.manual_seed(0)
        samples = []
        for _ in range(n):
            samples.append(
                target.generate(
                    prompt,
                    max_new_tokens=4,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    assistant_model=drafter,
                    num_assistant_tokens=3,
                    assistant_confidence_threshold=confidence_threshold,
                    prompt_lookup_num_tokens=copy_tokens,
                )[0, 3:].tolist()
            )
            lengths.extend(drafter.last_speculation_stats.draft_lengths)
            copied.append(drafter.last_speculation_stats.copied_cycles)
        return samples

    assert _max_pair_chi2(sample(1000), joint) < 51.2
    assert sum(drafter.last_speculation_stats.draft_lengths) > 0
    if confidence_threshold is not None:  # the rules did act: chains stopped early, cycles copied the context
        assert 1 in lengths and 2 in lengths and sum(copied) > 0

    honest_pick = EagleCandidateGenerator._pick

    def misreported_q(self, ids, logits):
        token, full, probability = honest_pick(self, ids, logits)
        return token, None if full is None else full / 3, probability

    monkeypatch.setattr(EagleCandidateGenerator, "_pick", misreported_q)
    assert _max_pair_chi2(sample(300), joint) > 51.2


def _sharpen(drafter, factor):
    """Scales the drafter's logits: a large factor makes it sure of every pick, 0 makes it uniform over D."""
    with torch.no_grad():
        drafter.lm_head.weight.mul_(factor)
    return drafter


@pytest.mark.parametrize("do_sample", [False, True])
def test_confidence_threshold_bounds_the_chain(target, do_sample):
    """Unsure picks end the chain after one token; sure picks run to K; 0 (or unset) always drafts K."""
    prompt = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    kwargs = dict(max_new_tokens=12, do_sample=do_sample, num_assistant_tokens=4)

    def lengths(drafter, threshold):
        torch.manual_seed(0)
        target.generate(prompt, assistant_model=drafter, assistant_confidence_threshold=threshold, **kwargs)
        return set(drafter.last_speculation_stats.draft_lengths[:3])  # later cycles may be cut by max_new_tokens

    uniform = _sharpen(make_drafter(target, "eagle3.1"), 0.0)  # p = 1/64 for every pick
    assert lengths(uniform, 0.5) == {1}
    assert lengths(uniform, 0.0) == lengths(uniform, None) == {4}
    sure = _sharpen(make_drafter(target, "eagle3.1"), 1e4)  # p ~ 1 for every pick
    assert lengths(sure, 0.5) == {4}


def test_confidence_threshold_from_the_drafter_config_and_validation(target):
    drafter = _sharpen(make_drafter(target, "eagle3.1"), 0.0)
    drafter.generation_config.assistant_confidence_threshold = 0.5
    target.generate(
        torch.tensor([[1, 2, 3]]), max_new_tokens=8, do_sample=False, assistant_model=drafter, num_assistant_tokens=4
    )
    assert set(drafter.last_speculation_stats.draft_lengths[:3]) == {1}
    with pytest.raises(ValueError, match=r"assistant_confidence_threshold=1.5 must lie in \[0, 1\)"):
        target.generate(
            torch.tensor([[1, 2, 3]]), max_new_tokens=4, assistant_model=drafter, assistant_confidence_threshold=1.5
        )


def test_copy_aware_drafting_continues_context_matches(target):
    """An oracle drafter (always right) whose first pick agrees with a context match proposes the copied span."""
    from hf_eagle31.modeling.candidate_generator import ContextHistory, EagleCandidateGenerator

    history = ContextHistory([5, 6, 7, 8, 9, 1, 5, 6, 2, 5, 6], max_ngram=2)
    assert history.continuation(10) == [2, 5, 6]  # the latest match of (5, 6) wins
    assert history.continuation(2) == [2, 5]
    assert ContextHistory([1, 2, 3, 4], 2).continuation(10) is None
    assert ContextHistory([4, 1, 2, 3, 4], 2).continuation(3) == [1, 2, 3]  # n = 1 fallback
    history.extend([9, 1])  # incremental: (9, 1) occurred once before, followed by 5, 6, 2
    assert history.continuation(3) == [5, 6, 2]

    # The copy path inside generate: matches that foresee the target's output are proposed after the drafter's
    # (agreeing) first pick and accepted; wrong ones are rejected; the output is plain greedy's either way.
    prompt = torch.tensor([[7, 8, 9, 10, 11, 7, 8, 9, 10, 11, 7, 8]])
    reference = target.generate(prompt, max_new_tokens=16, do_sample=False)
    future = reference[0]
    for foresee, copied_accepted in ((True, True), (False, False)):

        def match(self, room, foresee=foresee):
            n = len(self.history.tokens)
            span = future[n : n + min(self.settings.copy_tokens, room)].clone()
            if not foresee and len(span) > 1:
                span[1:] = (span[1:] + 1) % 64  # agrees on the first token only
            return span.tolist() if len(span) else None

        drafter = make_oracle(target, "eagle3.1", reference, lambda q: True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(EagleCandidateGenerator, "context_copy", match)
            out = target.generate(
                prompt,
                max_new_tokens=16,
                do_sample=False,
                assistant_model=drafter,
                num_assistant_tokens=1,
                prompt_lookup_num_tokens=5,
            )
        assert torch.equal(out, reference)
        stats = drafter.last_speculation_stats
        assert stats.copied_cycles > 0 and max(stats.draft_lengths) == 5
        assert (max(stats.accepted) == 5) == copied_accepted


def test_draft_length_below_one_is_refused(target):
    drafter = make_drafter(target, "eagle3.1")
    for k in (0, -2):
        with pytest.raises(ValueError, match=f"num_assistant_tokens={k}: the draft length must be >= 1"):
            target.generate(
                torch.tensor([[1, 2, 3]]), max_new_tokens=4, assistant_model=drafter, num_assistant_tokens=k
            )


def test_drafter_reused_with_a_second_target_takes_its_embeddings():
    first, second = tiny_target(seed=0), tiny_target(seed=5)
    drafter = make_drafter(first, "eagle3.1")
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42 % 64]])
    target_first = first.generate(prompt, max_new_tokens=6, do_sample=False, assistant_model=drafter)
    assert torch.equal(target_first, first.generate(prompt, max_new_tokens=6, do_sample=False))
    out = second.generate(prompt, max_new_tokens=6, do_sample=False, assistant_model=drafter)
    assert torch.equal(drafter.embed_tokens.weight, second.get_input_embeddings().weight)
    assert torch.equal(out, second.generate(prompt, max_new_tokens=6, do_sample=False))


def test_hidden_states_requested_by_the_caller(target):
    """`output_hidden_states=True, return_dict_in_generate=True` with a drafter returns every layer, as without one."""
    drafter = make_drafter(target, "eagle3.1")
    prompt = torch.tensor([[1, 2, 3, 4, 5]])
    kwargs = dict(max_new_tokens=6, do_sample=False, output_hidden_states=True, return_dict_in_generate=True)
    plain, assisted = target.generate(prompt, **kwargs), target.generate(prompt, assistant_model=drafter, **kwargs)
    assert torch.equal(plain.sequences, assisted.sequences)
    assert len(assisted.hidden_states[0]) == target.config.num_hidden_layers + 1


def test_custom_generate_entry_runs_the_same_loop(target):
    """`custom_generate=speculative_generate` (no patch involved) returns plain greedy's tokens with the drafter's
    policy; without a drafter it says how to pass one."""
    from hf_eagle31.modeling import speculative_generate

    drafter = make_drafter(target)
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(4))
    plain = target.generate(ids, max_new_tokens=12, do_sample=False)
    for tree in (False, True):
        drafter.generation_config.draft_tree = tree
        out = target.generate(
            ids, max_new_tokens=12, do_sample=False, custom_generate=speculative_generate, drafter=drafter
        )
        assert torch.equal(out, plain) and drafter.last_speculation_stats.policy == ("tree" if tree else "chain")
    with pytest.raises(ValueError, match="drafter=drafter"):
        target.generate(ids, max_new_tokens=3, custom_generate=speculative_generate)


def test_stats_are_fresh_and_left_padding_is_exact(target):
    """Each speculating call replaces the stats; a left-padded prompt (batch size 1, `padding=True`) gives plain
    greedy's tokens with chains and trees."""
    drafter = make_drafter(target)
    ids = torch.randint(1, 64, (1, 10), generator=torch.Generator().manual_seed(6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=-1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones_like(ids)], dim=-1)
    plain = target.generate(padded, attention_mask=mask, max_new_tokens=14, do_sample=False)
    first = None
    for tree, copy in ((False, 0), (True, 0), (True, 4), (False, 4)):
        out = target.generate(
            padded,
            attention_mask=mask,
            max_new_tokens=14,
            do_sample=False,
            assistant_model=drafter,
            draft_tree=tree,
            prompt_lookup_num_tokens=copy,
        )
        assert torch.equal(out, plain), (tree, copy)
        stats = drafter.last_speculation_stats
        assert stats is not first and stats.policy == ("tree" if tree else "chain") and stats.cycles >= 1
        first = stats
