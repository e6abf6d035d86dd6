"""Batches inside `target.generate(**batch, assistant_model=drafter)` (modeling/batched_decoding.py): every row equals
plain batched greedy on the same batch (left padding, ragged acceptance, early eos, budgets, stopping criteria, B up
to 16), sampling keeps each row's distribution, cache compaction, errors, per-row stats."""

import random

import pytest
import torch
from test_generate import _exact_joint, _max_pair_chi2
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from hf_eagle31 import Eagle3Drafter, MtpDrafter
from hf_eagle31.evaluation.batch_bench import batch_token_budget
from hf_eagle31.modeling.batched_decoding import BATCH_TOKEN_BUDGET, batch_draft_length, compact_cache

from conftest import VARIANTS, make_drafter, tiny_target


@pytest.fixture(autouse=True)
def drafting_batches():
    """The shipped budget drafts nothing at B >= 2 (measured on this CPU: docs/results.md, "Batches"); these tests
    check batched drafting itself, so they run under a budget of 16 verified tokens per cycle, where batches up to 16
    rows draft (`batch_token_budget` swaps the rule of every loaded copy of batched_decoding.py)."""
    with batch_token_budget(16):
        yield


def _batch_oracle(base_cls):
    class BatchOracle(base_cls):
        """A real drafter whose logits are replaced by each row's reference continuation: in row b, the query at
        rotary position q proposes the token at real position q + 2, where `agree(b, q)` holds (else a wrong one)."""

        references = None  # per row: the real tokens of plain greedy's output (padding stripped)
        agree = staticmethod(lambda b, q: True)

        def forward(self, input_ids, position_ids=None, logits_to_keep=0, **kwargs):
            out = super().forward(input_ids, position_ids=position_ids, **kwargs)
            logits = torch.full_like(out.logits, -10.0)
            for b, row in enumerate(position_ids.tolist()):
                reference = self.references[b]
                for col, q in enumerate(row):
                    token = int(reference[q + 2]) if q + 2 < len(reference) else 0
                    if not self.agree(b, q):
                        token = (token + 1) % self.config.vocab_size
                    logits[b, col, token] = 10.0
            out.logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
            return out

    return BatchOracle


ORACLES = {cls: _batch_oracle(cls) for cls in (Eagle3Drafter, MtpDrafter)}


def batch_oracle(target, variant, references, agree):
    drafter = make_drafter(target, variant)
    oracle = ORACLES[Eagle3Drafter if "eagle" in variant else MtpDrafter](drafter.config)
    oracle.load_state_dict(drafter.state_dict())
    oracle.embeddings_ready = True
    oracle.references, oracle.agree = references, agree
    return oracle.eval()


def padded_batch(rng, batch, vocab=64, longest=14):
    lengths = [rng.randint(1, longest) for _ in range(batch)]
    width = max(lengths)
    ids = torch.zeros(batch, width, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, width - n :] = torch.tensor([rng.randrange(1, vocab) for _ in range(n)])
        mask[b, width - n :] = 1
    return ids, mask


def test_batches_equal_plain_batched_greedy_fuzzed():
    """>= 60 random batches: B in 2..16, ragged left padding, variants, random and oracle drafters (rows accepting
    different numbers of tokens), K, budgets, eos that ends some rows early."""
    rng = random.Random(99)
    targets = [tiny_target(seed=s) for s in range(2)]
    for case in range(64):
        target = targets[case % 2]
        batch = rng.choice([2, 3, 4, 5, 8, 16])
        ids, mask = padded_batch(rng, batch)
        max_new = rng.choice([1, 2, 5, 9, 17, 24])
        options = dict(attention_mask=mask, max_new_tokens=max_new, do_sample=False, pad_token_id=0)
        reference = target.generate(ids, **options)
        if rng.random() < 0.4 and reference.shape[1] > ids.shape[1] + 2:
            options["eos_token_id"] = int(reference[rng.randrange(batch), ids.shape[1] + 1])
            reference = target.generate(ids, **options)
        variant = VARIANTS[case % 4]
        if case % 2:
            real = [
                reference[b][torch.cat([mask[b], torch.ones(reference.shape[1] - ids.shape[1])]).bool()]
                for b in range(batch)
            ]
            pattern = rng.choice([lambda b, q: True, lambda b, q: (b + q) % 3 != 0, lambda b, q: b % 2 == 0])
            drafter = batch_oracle(target, variant, real, pattern)
        else:
            drafter = make_drafter(target, variant, seed=case)
        out = target.generate(ids, assistant_model=drafter, num_assistant_tokens=rng.randint(1, 6), **options)
        assert torch.equal(out, reference), f"case {case}: B={batch} {variant} diverged from plain batched greedy"


def test_rows_accept_their_own_counts_and_the_cache_is_compacted():
    """An oracle right for even rows only: even rows accept whole drafts, odd rows none; holes pile up in the caches
    and are gathered away; per-row stats say so."""
    target = tiny_target()
    rng = random.Random(3)
    ids, mask = padded_batch(rng, 4)
    options = dict(attention_mask=mask, max_new_tokens=40, do_sample=False, pad_token_id=0)
    reference = target.generate(ids, **options)
    real = [reference[b][torch.cat([mask[b], torch.ones(40)]).bool()] for b in range(4)]
    drafter = batch_oracle(target, "eagle3.1", real, lambda b, q: b % 2 == 0)
    out = target.generate(ids, assistant_model=drafter, num_assistant_tokens=3, **options)
    assert torch.equal(out, reference)
    stats = drafter.last_speculation_stats
    assert stats.policy == "batched chain" and len(stats.rows) == 4
    assert stats.rows[0].tau > 3.5 and stats.rows[1].tau == 1.0  # K = 3: whole drafts vs none
    assert stats.cycles == sum(r.cycles for r in stats.rows)


def test_compact_cache_keeps_each_rows_valid_columns_in_order():
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    keys = torch.arange(2 * 6, dtype=torch.float).view(2, 1, 6, 1)
    cache.update(keys, keys.clone(), 0)
    valid = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]]).bool()
    new_valid = compact_cache(cache, valid)
    assert new_valid.tolist() == [[False, False, True, True, True], [True] * 5]
    assert cache.layers[0].keys[0, 0, 2:, 0].tolist() == [0.0, 2.0, 3.0]
    assert cache.layers[0].keys[1, 0, :, 0].tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_batch_sampling_keeps_each_rows_distribution():
    """do_sample with two rows: each row's 4-token continuations follow the target's exact joint (chi-square,
    df = 24, alpha = 0.001 -> 51.2)."""
    target = tiny_target(vocab_size=5, hidden_size=16)
    drafter = make_drafter(target, "eagle3.1")
    with torch.no_grad():
        target.lm_head.weight.mul_(8)
        drafter.lm_head.weight.mul_(30)
    prompts = torch.tensor([[1, 3, 2], [4, 0, 2]])
    joints = [_exact_joint(target, prompts[b : b + 1], 4, 0.8) for b in range(2)]
    torch.manual_seed(0)
    samples = [[], []]
    for _ in range(600):
        out = target.generate(
            prompts,
            max_new_tokens=4,
            do_sample=True,
            temperature=0.8,
            top_k=0,
            assistant_model=drafter,
            num_assistant_tokens=3,
            pad_token_id=0,
        )
        for b in range(2):
            samples[b].append(out[b, 3:].tolist())
    assert sum(drafter.last_speculation_stats.draft_lengths) > 0
    for b in range(2):
        assert _max_pair_chi2(samples[b], joints[b]) < 51.2


def test_custom_stopping_criteria_and_refusals():
    target = tiny_target()
    drafter = make_drafter(target)
    ids, mask = padded_batch(random.Random(5), 3)

    class StopRowOneEarly(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.tensor([False, input_ids.shape[1] >= ids.shape[1] + 4, False])

    out = target.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=0,
        assistant_model=drafter,
        stopping_criteria=StoppingCriteriaList([StopRowOneEarly()]),
    )
    reference = target.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(out[0], reference[0]) and torch.equal(out[2], reference[2])
    tail = out[1, ids.shape[1] :]
    kept = int((tail != 0).sum())
    assert kept >= 4 and torch.equal(tail[:kept], reference[1, ids.shape[1] : ids.shape[1] + kept])

    class Quiet(BaseStreamer):
        def put(self, value):
            pass

        def end(self):
            pass

    with pytest.raises(ValueError, match="batch size 1 only") as error:
        target.generate(ids, attention_mask=mask, max_new_tokens=3, assistant_model=drafter, streamer=Quiet())
    assert "\n" not in str(error.value)


def test_draft_length_shrinks_with_the_batch():
    assert [batch_draft_length(b, 6, budget=16) for b in (1, 2, 4, 8, 16)] == [6, 6, 3, 1, 0]
    assert batch_draft_length(4, 2, budget=16) == 2
    # the shipped budget (measured on this CPU, docs/results.md "Batches"): batches of 2+ rows run plain batched steps
    assert BATCH_TOKEN_BUDGET < 4 and [batch_draft_length(b, 6) for b in (2, 3, 4, 8, 16)] == [0] * 5


def test_batched_trees_equal_plain_batched_greedy_fuzzed():
    """Greedy batches with a draft tree (each row its own tree, verified with a per-row tree mask, the path kept by
    a per-row gather): every row equals plain batched greedy; random and oracle drafters, gates, shapes."""
    rng = random.Random(17)
    targets = [tiny_target(seed=s) for s in range(2)]
    for case in range(40):
        target = targets[case % 2]
        always = False
        batch = rng.choice([2, 3, 5, 8])
        ids, mask = padded_batch(rng, batch)
        max_new = rng.choice([1, 3, 8, 17, 24])
        options = dict(attention_mask=mask, max_new_tokens=max_new, do_sample=False, pad_token_id=0)
        reference = target.generate(ids, **options)
        if rng.random() < 0.3 and reference.shape[1] > ids.shape[1] + 2:
            options["eos_token_id"] = int(reference[rng.randrange(batch), ids.shape[1] + 1])
            reference = target.generate(ids, **options)
        variant = VARIANTS[case % 4]
        if case % 2:
            real = [
                reference[b][torch.cat([mask[b], torch.ones(reference.shape[1] - ids.shape[1])]).bool()]
                for b in range(batch)
            ]
            always = rng.random() < 0.5
            drafter = batch_oracle(target, variant, real, (lambda b, q: True) if always else (lambda b, q: (b + q) % 3))
        else:
            drafter = make_drafter(target, variant, seed=case)
        shape = dict(
            tree_depth=rng.randint(1, 4),
            tree_topk=rng.randint(1, 4),
            tree_total_tokens=rng.randint(1, 12),
            tree_min_probability=rng.choice([0.0, 0.05, 0.5]),
        )
        out = target.generate(ids, assistant_model=drafter, draft_tree=True, **shape, **options)
        assert torch.equal(out, reference), f"case {case}: B={batch} {variant} {shape} diverged"
        stats = drafter.last_speculation_stats
        assert stats.policy == "batched tree"
        if case % 2 and always and stats.cycles and shape["tree_min_probability"] < 0.5:  # an oracle's tree is used
            assert stats.tau > 1.5, (case, shape, stats.accepted)
