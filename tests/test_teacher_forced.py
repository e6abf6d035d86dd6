"""Teacher-forced acceptance per depth (`hf_eagle31.evaluation.teacher_forced`): tiny random models, each test able
to fail for a real bug (indexing of depths and positions, chain semantics, bootstrap, pairing, the answer cache, the
CLI)."""

import json
import types

import numpy as np
import pytest
import torch
from transformers.cache_utils import DynamicCache

from hf_eagle31.data.suites import EvalPrompt
from hf_eagle31.evaluation import teacher_forced as tf
from hf_eagle31.features import capture_target_features

from conftest import TinyCliSetup, make_drafter, tiny_chat_tokenizer, tiny_target, tiny_training_args


def _sequence(target, prompt_length=6, answer_length=14, seed=0, vocab=None):
    vocab = vocab or target.config.vocab_size
    torch.manual_seed(seed)
    prompt = torch.randint(0, vocab, (prompt_length,)).tolist()
    answer = tf.generate_answer(target, prompt, answer_length)
    return tf.TFSequence(
        prompt_id=f"p{seed}",
        turn=1,
        suite="s",
        source="src",
        group="g",
        cluster=f"p{seed}",
        input_ids=prompt + answer,
        prompt_length=prompt_length,
    )


def _features(target, drafter, seq):
    ids = torch.tensor([seq.input_ids])
    feats, final = capture_target_features(target, ids, None, drafter.config.target_layer_ids)
    greedy = target.lm_head(final).argmax(-1)
    return ids, feats, greedy


@pytest.mark.parametrize("variant,layers", [("eagle3", 1), ("eagle3.1", 1), ("eagle3.1", 2)])
def test_ranks_equal_a_real_teacher_forced_chain(variant, layers):
    """Every (depth, position) rank equals the one computed from a real chain through `drafter.forward` with a cache:
    prefill x_1..x_{t+1} with g_0..g_t, then depth j fed the previous step's `next_hidden` and the correct token
    x_{t+j}; label y_{t+j}. Positions are t = P-1 .. n-3, -1 past the answer."""
    target = tiny_target()
    target.generation_config.eos_token_id = None
    drafter = make_drafter(target, variant, draft_vocab_size=40, num_hidden_layers=layers)
    seq = _sequence(target)
    depth = 4
    ranks, _ = tf.teacher_forced_ranks(target, {"d": drafter}, [seq], max_depth=depth)
    ranks = ranks["d"][0]
    ids, feats, greedy = _features(target, drafter, seq)
    n, first = ids.shape[1], seq.prompt_length - 1
    assert ranks.shape == (depth, n - 2 - first)
    to_draft = tf._target_to_draft(drafter)
    with torch.no_grad():
        for t in range(first, n - 2):
            cache = DynamicCache()
            out = drafter(ids[:, 1 : t + 2], target_hidden_states=[f[:, : t + 1] for f in feats], cache=cache)
            for j in range(1, depth + 1):
                if j > 1:
                    if t + j > n - 1:
                        break
                    out = drafter(ids[:, t + j : t + j + 1], hidden_states=out.next_hidden[:, -1:], cache=cache)
                expected = -1
                if t + j <= n - 2:
                    label = to_draft[greedy[0, t + j]]
                    expected = int(tf.label_ranks(out.logits[0, -1:], label[None])[0])
                assert ranks[j - 1, t - first] == expected, (t, j)
    assert (ranks[0] >= 0).all() and (ranks[depth - 1, -(depth - 1) :] == -1).all()


def test_tau_chain_equals_a_free_running_greedy_chain():
    """tau_chain[K] from the joint teacher-forced indicators equals, position by position, what a real greedy chain
    (drafting its own argmax tokens) accepts against the target's greedy continuation, + 1. A small vocabulary makes
    acceptances frequent enough for the check to bite."""
    target = tiny_target(vocab_size=12, initializer_range=1.0)  # large weights: greedy answers that do not loop
    target.generation_config.eos_token_id = None
    drafter = make_drafter(target, "eagle3.1")
    seqs = [_sequence(target, answer_length=24, seed=s) for s in range(3)]
    depth = 4
    ranks, _ = tf.teacher_forced_ranks(target, {"d": drafter}, seqs, max_depth=depth)
    hits = np.concatenate([r == 0 for r in ranks["d"]], 1)
    assert (hits & ~np.cumprod(hits, 0).astype(bool)).sum() >= 3  # hits after a miss: joint != marginal here
    total_real = total_tf = 0.0
    count = 0
    accepted_any = 0
    for seq, rank in zip(seqs, ranks["d"]):
        ids, feats, greedy = _features(target, drafter, seq)
        n, first = ids.shape[1], seq.prompt_length - 1
        with torch.no_grad():
            for t in range(first, n - 2 - depth + 1):  # positions where depth K = depth is defined
                cache = DynamicCache()
                out = drafter(ids[:, 1 : t + 2], target_hidden_states=[f[:, : t + 1] for f in feats], cache=cache)
                accepted = 0
                for j in range(1, depth + 1):
                    token = drafter.draft_to_target_ids[out.logits[0, -1].argmax()]
                    if token != greedy[0, t + j]:
                        break
                    accepted += 1
                    out = drafter(token.view(1, 1), hidden_states=out.next_hidden[:, -1:], cache=cache)
                joint = np.cumprod(rank[:, t - first] == 0)
                assert accepted == int(joint.sum()), t
                total_real += 1 + accepted
                total_tf += 1 + joint.sum()
                count += 1
                accepted_any += accepted > 0
    assert accepted_any >= 3  # the check saw real acceptances
    summary = tf.summarize(seqs, ranks, top_ks=(1,), num_resamples=50)
    assert summary["metrics"]["d"]["tau_chain"]["value"][depth - 1] == pytest.approx(total_real / count)


def _copy_target_drafter(target, drafter, wrong=False):
    """A drafter whose step s at position t ranks the target's argmax at t+1+s first (`wrong`: second)."""

    def ttt_forward(self, input_ids, target_hidden_states, ttt_steps):
        greedy = target(input_ids).logits.argmax(-1)  # (1, n)
        to_draft = tf._target_to_draft(self)
        out = []
        for step in range(ttt_steps):
            logits = torch.zeros(*input_ids.shape, self.config.draft_vocab_size)
            label = torch.full_like(greedy, -1)
            label[:, : input_ids.shape[1] - 1 - step] = greedy[:, 1 + step :]
            draft = to_draft[label.clamp(min=0)]
            if wrong:  # the target's token second
                logits.scatter_(-1, draft[..., None], 5.0)
                draft = (draft + 1) % self.config.draft_vocab_size
            logits.scatter_(-1, draft[..., None], 10.0)
            out.append(logits)
        return out

    drafter.ttt_forward = types.MethodType(ttt_forward, drafter)
    return drafter


def test_a_drafter_copying_the_target_agrees_everywhere_and_one_that_never_does_nowhere():
    target = tiny_target()
    target.generation_config.eos_token_id = None
    seqs = [_sequence(target, seed=s) for s in range(3)]
    drafters = {
        "copy": _copy_target_drafter(target, make_drafter(target, "eagle3")),
        "wrong": _copy_target_drafter(target, make_drafter(target, "eagle3.1"), wrong=True),
    }
    ranks, info = tf.teacher_forced_ranks(target, drafters, seqs, max_depth=5)
    assert info["target_self_consistency"] == 1.0
    summary = tf.summarize(seqs, ranks, top_ks=(1, 4), num_resamples=100)
    copy, wrong = summary["metrics"]["copy"], summary["metrics"]["wrong"]
    assert summary["positions_per_depth"] == [3 * (14 - j) for j in range(1, 6)]  # A - j per sequence
    for k in ("acc@1", "acc@4", "cond@1"):
        assert copy[k]["value"] == [1.0] * 5 and copy[k]["ci"] == [[1.0, 1.0]] * 5
    assert wrong["acc@1"]["value"] == [0.0] * 5
    assert wrong["acc@4"]["value"] == [1.0] * 5  # the target's token is its second choice
    assert copy["tau_chain"]["value"] == pytest.approx([2, 3, 4, 5, 6])
    assert wrong["tau_chain"]["value"] == pytest.approx([1.0] * 5)
    assert wrong["tau_tree@4"]["value"] == pytest.approx([2, 3, 4, 5, 6])
    assert summary["diff"]["wrong"]["acc@1"]["value"] == [-1.0] * 5


def test_label_ranks_break_ties_like_argmax_and_mark_labels_outside_the_draft_vocab():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    assert tf.label_ranks(logits, torch.tensor([1, 2, 0])).tolist() == [0, 2, 3]
    assert tf.label_ranks(logits, torch.tensor([2, 0, -1])).tolist() == [1, 0, tf.BIG_RANK]
    assert int(logits[0].argmax()) == 1


def _synthetic(clusters, rng, p=0.3, spread=0.15):
    """Sequences with one depth whose hit rate per cluster is drawn around p (cluster-correlated positions)."""
    seqs, ranks = [], []
    for c in range(clusters):
        rate = float(np.clip(rng.normal(p, spread), 0, 1))
        n = int(rng.integers(20, 120))
        hits = rng.random(n) < rate
        seqs.append(tf.TFSequence(f"c{c}", 1, "s", "src", "g", f"c{c}", [0] * (n + 3), 1))
        ranks.append(np.where(hits, 0, 7).astype(np.int16)[None])
    return seqs, {"d": ranks}


def test_bootstrap_intervals_cover_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered, trials = 0, 120
    for trial in range(trials):
        seqs, ranks = _synthetic(30, rng)
        s = tf.summarize(seqs, ranks, top_ks=(1,), num_resamples=400, seed=trial, groups=False)
        low, high = s["metrics"]["d"]["acc@1"]["ci"][0]
        covered += low <= 0.3 <= high
    assert 0.85 <= covered / trials <= 1.0


def test_bootstrap_interval_of_a_constant_rate_is_that_rate_and_width_shrinks_with_clusters():
    seqs = [tf.TFSequence(f"c{c}", 1, "s", "src", "g", f"c{c}", [0] * 11, 1) for c in range(10)]
    ranks = {"d": [np.array([[0, 5, 5, 5, 0, 5, 5, 5]], dtype=np.int16) for _ in seqs]}
    s = tf.summarize(seqs, ranks, top_ks=(1,), num_resamples=200)
    assert s["metrics"]["d"]["acc@1"]["value"][0] == 0.25
    assert s["metrics"]["d"]["acc@1"]["ci"][0] == [0.25, 0.25]
    rng = np.random.default_rng(1)
    widths = []
    for clusters in (10, 160):
        seqs, ranks = _synthetic(clusters, rng)
        lo, hi = tf.summarize(seqs, ranks, top_ks=(1,), num_resamples=400)["metrics"]["d"]["acc@1"]["ci"][0]
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_paired_difference_of_a_drafter_with_itself_is_exactly_zero():
    rng = np.random.default_rng(2)
    seqs, ranks = _synthetic(12, rng)
    ranks = {"a": ranks["d"], "b": [r.copy() for r in ranks["d"]]}
    s = tf.summarize(seqs, ranks, top_ks=(1, 2), num_resamples=300)
    for metric, entry in s["diff"]["b"].items():
        assert all(v == 0.0 for v in entry["value"] if v is not None), metric
        assert all(ci == [0.0, 0.0] for ci, v in zip(entry["ci"], entry["value"]) if v is not None), metric
    assert s["ratio"]["b"]["acc@1"]["value"] == [1.0]


def test_paired_difference_is_tighter_than_the_unpaired_intervals():
    """Two drafters that differ on a few positions: the paired interval of the difference is much narrower than
    either drafter's own interval (the conversations' shared difficulty cancels)."""
    rng = np.random.default_rng(3)
    seqs, ranks = _synthetic(30, rng)
    better = []
    for r in ranks["d"]:
        b = r.copy()
        flip = (b[0] > 0) & (rng.random(b.shape[1]) < 0.1)
        b[0, flip] = 0
        better.append(b)
    s = tf.summarize(seqs, {"a": ranks["d"], "b": better}, top_ks=(1,), num_resamples=500)
    lo, hi = s["diff"]["b"]["acc@1"]["ci"][0]
    own_lo, own_hi = s["metrics"]["a"]["acc@1"]["ci"][0]
    assert 0 < lo < s["diff"]["b"]["acc@1"]["value"][0] < hi
    assert hi - lo < (own_hi - own_lo) / 2


def test_answers_are_cached_on_disk_and_reused(tmp_path, monkeypatch):
    tokenizer = tiny_chat_tokenizer()
    target = tiny_target(eos_token_id=tokenizer.eos_token_id)
    target.generation_config.eos_token_id = None
    prompts = [EvalPrompt("a", "s", "src", ["w1 w2 w3", "w4 w5"]), EvalPrompt("b", "s", "src", ["w7 w8"])]
    first = tf.build_sequences(target, tokenizer, prompts, max_new_tokens=5, cache=tf.AnswerCache(tmp_path))
    assert [s.answer_length for s in first] == [5, 5, 5] and [s.turn for s in first] == [1, 2, 1]
    assert first[1].cluster == first[0].cluster == "a"

    def refuse(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(tf, "generate_answers", refuse)
    cache = tf.AnswerCache(tmp_path)  # a new process would start like this
    again = tf.build_sequences(target, tokenizer, prompts, max_new_tokens=5, cache=cache)
    assert [s.input_ids for s in again] == [s.input_ids for s in first]
    assert (cache.hits, cache.misses) == (3, 0)
    with pytest.raises(AssertionError, match="generated again"):  # another max_new_tokens is another key
        tf.build_sequences(target, tokenizer, prompts, max_new_tokens=6, cache=tf.AnswerCache(tmp_path))
    before = tf.target_fingerprint(target)
    with torch.no_grad():
        target.model.layers[0].mlp.up_proj.weight[0, 0] += 1.0
    assert tf.target_fingerprint(target) != before  # another target: other answers


def test_cli_eval_teacher_forced_writes_a_paired_report(tmp_path, capsys):
    from hf_eagle31.cli import main

    cli = TinyCliSetup(tmp_path, variants=("eagle3", "eagle3.1"))
    out = tmp_path / "tf.json"
    code = main(
        cli.argv(
            "eval",
            teacher_forced=True,
            max_new_tokens=12,
            max_depth=3,
            top_k=[1, 2],
            bootstrap=100,
            answer_cache=str(tmp_path / "answers"),
            json=str(out),
        )
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Δ drafter-eagle3.1 − drafter-eagle3" in printed and "tau_tree@2" in printed
    report = json.loads(out.read_text())
    assert report["drafters"] == ["drafter-eagle3", "drafter-eagle3.1"]
    assert report["positions_per_depth"] == [3 * (12 - j) for j in (1, 2, 3)]
    assert set(report["metrics"]["drafter-eagle3"]) >= {"acc@1", "acc@2", "cond@1", "tau_chain", "tau_tree@2"}
    assert report["answer_cache"]["misses"] == 3 and report["settings"]["teacher_forced"]
    code = main(
        cli.argv(
            "eval",
            drafters=cli.drafter_dirs[:1],
            teacher_forced=True,
            max_new_tokens=12,
            max_depth=3,
            answer_cache=str(tmp_path / "answers"),
            json=str(out),
        )
    )
    assert code == 0 and json.loads(out.read_text())["answer_cache"]["hits"] == 3


def test_batched_answers_equal_one_by_one_answers_and_stop_at_eos():
    target = tiny_target(vocab_size=12, initializer_range=1.0, eos_token_id=3)
    torch.manual_seed(5)
    prompts = [torch.randint(0, 12, (n,)).tolist() for n in (3, 9, 5, 12)]
    batched = tf.generate_answers(target, prompts, 10)
    single = [tf.generate_answer(target, p, 10) for p in prompts]
    assert batched == single
    assert all(len(a) == 10 or a[-1] == 3 for a in batched) and all(3 not in a[:-1] for a in batched)


# ---------------------------------------------------------------------------------------------- LK objectives
# (training.py's acceptance-rate objectives, judged by this evaluator: kept here with the rest of issue 28's tests)


def test_acceptance_rate_objectives_on_known_distributions():
    from hf_eagle31.training.loss import LOSS_OBJECTIVES, acceptance_rate

    teacher = torch.log(torch.tensor([[0.5, 0.5, 1e-12], [0.2, 0.3, 0.5]]))
    student = torch.log(torch.tensor([[1.0, 1e-12, 1e-12], [0.2, 0.3, 0.5]]))
    torch.testing.assert_close(acceptance_rate(student, teacher), torch.tensor([0.5, 1.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        LOSS_OBJECTIVES["lk_alpha"](student, teacher),
        torch.tensor([np.log(2.0), 0.0], dtype=torch.float32),
        atol=1e-5,
        rtol=0,
    )
    ce = LOSS_OBJECTIVES["soft_ce"](student, teacher)
    torch.testing.assert_close(
        LOSS_OBJECTIVES["lk_hybrid"](student, teacher), ce + LOSS_OBJECTIVES["lk_alpha"](student, teacher)
    )


@pytest.mark.parametrize("objective", ["lk_alpha", "lk_hybrid"])
def test_lk_objectives_in_the_ttt_loss_chunk_like_the_whole_loss(objective):
    from hf_eagle31.training.loss import ttt_loss

    torch.manual_seed(0)
    b, n, d = 2, 11, 24
    teacher = torch.randn(b, n, d)
    loss_mask = (torch.rand(b, n) > 0.2).float()
    base = [torch.randn(b, n, d) for _ in range(3)]
    results = []
    for chunk in (0, 4):
        logits = [x.clone().requires_grad_(True) for x in base]
        total, stats = ttt_loss(
            logits,
            teacher,
            teacher.argmax(-1),
            torch.ones(d, dtype=torch.bool),
            loss_mask,
            chunk_size=chunk,
            objective=objective,
        )
        total.backward()
        results.append((total.detach(), [x.grad for x in logits]))
    torch.testing.assert_close(results[0][0], results[1][0])
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(results[0][1], results[1][1]))
    plain, _ = ttt_loss(base, teacher, teacher.argmax(-1), torch.ones(d, dtype=torch.bool), loss_mask)
    assert not torch.allclose(plain, results[0][0])
    with pytest.raises(ValueError, match="unknown loss objective"):
        ttt_loss(base, teacher, teacher.argmax(-1), torch.ones(d, dtype=torch.bool), loss_mask, objective="kl")


def test_trainer_learns_with_the_lk_hybrid_objective(tmp_path):
    import datasets

    from hf_eagle31.training import EagleTrainer

    target = tiny_target()
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    g = torch.Generator().manual_seed(0)
    rows = [
        {"input_ids": torch.randint(0, 64, (12,), generator=g).tolist(), "loss_mask": [0] * 3 + [1] * 9}
        for _ in range(4)
    ]
    args = tiny_training_args(tmp_path, per_device_train_batch_size=4, max_steps=6, logging_steps=1, learning_rate=1e-2)
    trainer = EagleTrainer(
        model=drafter.train(),
        args=args,
        target=target,
        ttt_steps=2,
        train_dataset=datasets.Dataset.from_list(rows),
        loss_objective="lk_hybrid",
    )
    trainer.train()
    history = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert history[-1] < history[0]
    with pytest.raises(ValueError, match="unknown loss objective"):
        EagleTrainer(
            model=drafter, args=args, target=target, train_dataset=datasets.Dataset.from_list(rows), loss_objective="tv"
        )


def test_depth_and_top_k_are_bounded_by_the_answer_and_the_draft_vocabulary():
    """Issue 33: a top-k as large as the draft vocabulary reported a random drafter as perfect (acc 1.0), a depth
    beyond the answer ran for minutes scoring nothing; both are refused before any work, naming the bound."""
    target = tiny_target()
    drafters = {"d": make_drafter(target, draft_vocab_size=48)}
    prompts = [EvalPrompt(id="p", suite="x", source="x", turns=["w1 w2"])]
    with pytest.raises(ValueError, match=r"top_ks=\[1, 48\]: a k >= the draft vocabulary size 48"):
        tf.evaluate_teacher_forced(target, tiny_chat_tokenizer(), drafters, prompts, max_new_tokens=16, top_ks=[1, 48])
    with pytest.raises(ValueError, match=r"max_depth=4: depths beyond max_new_tokens - 1 = 3"):
        tf.evaluate_teacher_forced(target, tiny_chat_tokenizer(), drafters, prompts, max_new_tokens=4, max_depth=4)
    tf.check_sizes(drafters, max_new_tokens=4, max_depth=3, top_ks=[1, 47])  # the largest that mean something
