"""The trainer's validation metrics (issue 28): teacher-forced agreement per depth and tau_chain from the loss's own
TTT unroll on the held-out rows, the same numbers `eval --teacher-forced` computes (hf_eagle31/agreement.py)."""

import datasets
import pytest
import torch
from test_training import VOCAB, drafter_for, random_rows

from hf_eagle31.agreement import BIG_RANK, capped_label_ranks, chain_ranks, label_ranks, position_metrics
from hf_eagle31.evaluation import teacher_forced as tf
from hf_eagle31.features import FeatureDataset, precompute_features
from hf_eagle31.training import EagleTrainer, apply_lora
from hf_eagle31.training import trainer as trainer_module

from conftest import tiny_target, tiny_training_args


def _trainer(tmp_path, model, target, eval_rows, ttt_steps=3, **kw):
    args = {"per_device_eval_batch_size": 4, **kw.pop("args", {})}
    return EagleTrainer(
        model=model,
        args=tiny_training_args(tmp_path, **args),
        target=target,
        ttt_steps=ttt_steps,
        train_dataset=random_rows(8),
        eval_dataset=eval_rows,
        **kw,
    )


def test_evaluate_reports_agreement_per_depth_and_tau_chain(tmp_path):
    target = tiny_target()
    metrics = _trainer(tmp_path, drafter_for(target), target, random_rows(10, seed=3)).evaluate()
    for d in (1, 2, 3):
        for k in (1, 4):
            assert 0 <= metrics[f"eval_acc{k}_depth{d}"] <= 1
        assert metrics[f"eval_acc1_depth{d}"] <= metrics[f"eval_acc4_depth{d}"]
    assert "eval_acc1_depth4" not in metrics  # depths 1 .. ttt_steps
    assert 1 <= metrics["eval_tau_chain"] <= 4
    assert metrics["eval_acc1_depth1_halfwidth"] >= 0 and metrics["eval_tau_chain_halfwidth"] >= 0
    assert metrics["eval_tf_positions"] > 0
    assert "eval_loss" in metrics and "eval_ttt_acc_0" in metrics  # the loss metrics are still there
    off = _trainer(tmp_path, drafter_for(target), target, random_rows(10, seed=3), eval_top_ks=None).evaluate()
    assert not any("depth" in key or "tau" in key for key in off)
    assert off["eval_loss"] == pytest.approx(metrics["eval_loss"])


# A hand-built eval batch, ttt_steps = 2: the drafter's step logits are chosen (not computed), so every indicator is
# known. Chain position t counts at depth d iff x_{t+1} .. x_{t+1+d} are assistant tokens; depth d at t is scored
# against the target's greedy token greedy[t + d].
#   row 0: n = 8, loss_mask 0 0 0 1 1 1 1 1   -> depth 1: t = 2, 3, 4, 5; depth 2: t = 2, 3, 4
#   row 1: n = 6, loss_mask 0 0 1 1 0 1 (pad) -> depth 1: t = 1 (t = 2, 3 read or draft the masked x_4); depth 2: none
RIGHT = {  # (row, depth, t): drafter's argmax == target's greedy token
    (0, 1, 2): True,
    (0, 1, 3): True,
    (0, 1, 4): False,
    (0, 1, 5): True,  # but greedy[6] is outside the draft vocabulary: a miss all the same
    (0, 2, 2): True,
    (0, 2, 3): True,
    (0, 2, 4): False,  # greedy[6] again
    (1, 1, 1): True,
}
OUTSIDE = 3  # a target id outside drafter_for's draft vocabulary (ids i * 64 // 48)


def _hand_built(drafter):
    g = torch.Generator().manual_seed(0)
    in_draft = drafter.draft_to_target_ids
    lengths, masks = [8, 6], [[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1]]
    rows = []
    for n, mask in zip(lengths, masks):
        greedy = in_draft[torch.randint(0, len(in_draft), (n,), generator=g)]
        rows.append(
            {
                "input_ids": torch.randint(0, VOCAB, (n,), generator=g).tolist(),
                "loss_mask": mask,
                "teacher_argmax": greedy.tolist(),
                "target_hidden_states": torch.randn(n, 3 * 32, generator=g).tolist(),
                "target_final_hidden": torch.randn(n, 32, generator=g).tolist(),
            }
        )
    rows[0]["teacher_argmax"][6] = OUTSIDE  # the depth-1 label at t = 5
    to_draft = torch.full((VOCAB,), -1, dtype=torch.long)
    to_draft[in_draft] = torch.arange(len(in_draft))
    width, d = max(lengths), len(in_draft)
    step_logits = []
    for depth in (1, 2):
        logits = torch.zeros(2, width, d)
        for b, row in enumerate(rows):
            for t in range(lengths[b] - 1 - depth):
                label = int(to_draft[row["teacher_argmax"][t + depth]])
                right = RIGHT.get((b, depth, t), True)  # positions that do not count: right, so counting them shows
                if label < 0:
                    logits[b, t, 0] = 10.0  # the label cannot be drafted
                elif right:
                    logits[b, t, label] = 10.0
                else:  # wrong, but the label is the second choice (inside the top 4)
                    logits[b, t, (label + 1) % d] = 10.0
                    logits[b, t, label] = 5.0
        step_logits.append(logits)
    return datasets.Dataset.from_list(rows), step_logits


def test_hand_built_agreement_gives_exactly_the_expected_acc_and_tau(tmp_path, monkeypatch):
    target = tiny_target()
    drafter = drafter_for(target)
    rows, step_logits = _hand_built(drafter)
    calls = []

    def fixed_logits(model, input_ids, target_hidden_states, ttt_steps, return_dict=True):
        assert input_ids.shape == (2, 8) and ttt_steps == 2
        calls.append(1)
        return step_logits

    monkeypatch.setattr(trainer_module, "_ttt_step_logits", fixed_logits)
    weight = target.lm_head.weight.detach()
    trainer = EagleTrainer(
        model=drafter,
        args=tiny_training_args(tmp_path, per_device_eval_batch_size=2),
        teacher_head=weight,
        ttt_steps=2,
        train_dataset=rows,
        eval_dataset=rows,
        eval_resamples=0,
    )
    metrics = trainer.evaluate()
    assert len(calls) == 1  # the loss's unroll, no second one
    assert metrics["eval_tf_positions"] == 5
    assert metrics["eval_acc1_depth1"] == pytest.approx(3 / 5)  # row 0: t = 2, 3; row 1: t = 1
    assert metrics["eval_acc1_depth2"] == pytest.approx(2 / 3)  # row 0: t = 2, 3
    assert metrics["eval_acc4_depth1"] == pytest.approx(4 / 5)  # every label but the undraftable one
    assert metrics["eval_acc4_depth2"] == pytest.approx(2 / 3)  # t = 4's label is greedy[6] too: undraftable
    # K = 2 chains at row 0, t = 2 / 3 / 4: both right (3), both right (3), first wrong (1). The product of the
    # marginals would give 1 + 3/5 + 3/5 * 2/3 = 2.0.
    assert metrics["eval_tau_chain"] == pytest.approx(7 / 3)
    assert "eval_acc1_depth1_halfwidth" not in metrics  # eval_resamples=0: no interval


def test_chain_ranks_excludes_masked_positions_and_padding():
    """chain_ranks directly: a position counts only where x_{t+1} .. x_{t+1+d} are all in the mask, whatever the
    logits say there (here: right everywhere)."""
    n, d = 10, 16
    greedy = torch.randint(0, d, (1, n))
    to_draft = torch.arange(d)
    logits = [torch.zeros(1, n, d).scatter_(-1, greedy.roll(-j, 1)[..., None], 1.0) for j in (1, 2, 3)]
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 1, 1, 1, 1]], dtype=torch.bool)
    ranks = chain_ranks(logits, greedy, to_draft, mask)[0]
    defined = [[t for t in range(n) if ranks[j, t] >= 0] for j in range(3)]
    assert defined == [[1, 2, 5, 6, 7], [1, 5, 6], [5]]
    assert (ranks[ranks >= 0] == 0).all()
    names, sums, counts = position_metrics(ranks.numpy(), (1,))
    assert sums[names.index("tau_chain/3")] / counts[names.index("tau_chain/3")] == 4.0


@pytest.mark.parametrize("levels", [3, 50, None])  # logits in 3 / 50 distinct values (ties everywhere), or continuous
@pytest.mark.parametrize("max_rank", [1, 4, 9])
def test_capped_ranks_equal_full_ranks_below_the_cap(levels, max_rank):
    g = torch.Generator().manual_seed(max_rank)
    b, n, d = 3, 40, 9 if max_rank == 9 else 30  # max_rank = 9: the whole draft vocabulary is the top k
    logits = torch.randn(b, n, d, generator=g) if levels is None else torch.randint(0, levels, (b, n, d), generator=g)
    logits = logits.float()
    rows, cols = torch.randint(0, b, (200,), generator=g), torch.randint(0, n, (200,), generator=g)
    labels = torch.randint(-1, d, (200,), generator=g)  # -1: outside the draft vocabulary
    full = label_ranks(logits[rows, cols], labels)
    expected = torch.where(full == BIG_RANK, full, full.clamp(max=max_rank))
    assert torch.equal(capped_label_ranks(logits, rows, cols, labels, max_rank), expected)


def test_agreement_equals_eval_teacher_forced_on_the_same_sequences(tmp_path):
    """The trainer's numbers are `eval --teacher-forced`'s: rows = prompt + the target's greedy answer, loss mask on
    the answer, against `teacher_forced_ranks` + `summarize` of the same drafter (same positions, same math)."""
    target = tiny_target()
    drafter = drafter_for(target)
    sequences = []
    for seed, (p, a) in enumerate([(5, 12), (7, 9), (4, 15), (6, 11)]):
        torch.manual_seed(seed)
        prompt = torch.randint(0, VOCAB, (p,)).tolist()
        answer = tf.generate_answer(target, prompt, a)
        sequences.append(tf.TFSequence(f"p{seed}", 1, "s", "src", "g", f"p{seed}", prompt + answer, p))
    rows = datasets.Dataset.from_list(
        [{"input_ids": s.input_ids, "loss_mask": [0] * s.prompt_length + [1] * s.answer_length} for s in sequences]
    )
    ranks, _ = tf.teacher_forced_ranks(target, {"d": drafter.eval()}, sequences, max_depth=3)
    summary = tf.summarize(sequences, ranks, top_ks=(1, 4), num_resamples=200)["metrics"]["d"]
    metrics = _trainer(tmp_path, drafter, target, rows, args={"per_device_eval_batch_size": 2}).evaluate()
    for d in (1, 2, 3):
        assert metrics[f"eval_acc1_depth{d}"] == pytest.approx(summary["acc@1"]["value"][d - 1], abs=1e-12)
        assert metrics[f"eval_acc4_depth{d}"] == pytest.approx(summary["acc@4"]["value"][d - 1], abs=1e-12)
    assert metrics["eval_tau_chain"] == pytest.approx(summary["tau_chain"]["value"][2], abs=1e-12)
    positions = sum(s.answer_length - 1 for s in sequences)  # t = P-1 .. n-3
    assert metrics["eval_tf_positions"] == positions == int(sum((r[0] >= 0).sum() for r in ranks["d"]))


def test_offline_features_give_the_online_agreement(tmp_path):
    target = tiny_target()
    eval_rows = random_rows(6, seed=5)
    online = _trainer(tmp_path / "on", drafter_for(target), target, eval_rows).evaluate()
    drafter = drafter_for(target)
    layer_ids = drafter.config.target_layer_ids
    precompute_features(target, eval_rows, layer_ids, str(tmp_path / "feat"), shard_size=4, show_progress=False)
    features = FeatureDataset(str(tmp_path / "feat"), layer_ids)
    _, head, bias = features.load_head()
    offline = EagleTrainer(
        model=drafter,
        args=tiny_training_args(tmp_path / "off", per_device_eval_batch_size=4),
        teacher_head=head,
        teacher_head_bias=bias,
        ttt_steps=3,
        train_dataset=features,
        eval_dataset=features,
    ).evaluate()
    keys = [k for k in online if "depth" in k or "tau" in k or k == "eval_tf_positions"]
    assert len(keys) == 3 * 2 + 4
    for key in keys:
        assert offline[key] == pytest.approx(online[key], abs=1e-9), key


def test_peft_wrapped_drafter_reports_the_same_agreement(tmp_path):
    """A fresh LoRA adapter is the identity (B = 0): the wrapped drafter's agreement is the base drafter's."""
    target = tiny_target()
    eval_rows = random_rows(6, seed=7)
    base = _trainer(tmp_path / "base", drafter_for(target), target, eval_rows).evaluate()
    wrapped = _trainer(tmp_path / "lora", apply_lora(drafter_for(target), r=4), target, eval_rows).evaluate()
    for key in ("eval_acc1_depth1", "eval_acc4_depth3", "eval_tau_chain", "eval_tf_positions"):
        assert wrapped[key] == pytest.approx(base[key]), key


def test_load_best_model_at_end_selects_by_tau_chain(tmp_path, monkeypatch):
    """metric_for_best_model="tau_chain" (HF prefixes eval_) with greater_is_better: the Trainer keeps the checkpoint
    of the highest eval_tau_chain and loads it at the end. The reported values are scripted (the best in the middle,
    so loading it changes the model); the real ones are kept to check what was loaded."""
    target = tiny_target()
    args = dict(
        max_steps=6,
        learning_rate=3e-2,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="tau_chain",
        greater_is_better=True,
        logging_steps=2,
        per_device_train_batch_size=4,
    )
    scripted, real = iter([1.5, 2.0, 1.2]), []
    original = EagleTrainer._agreement_metrics

    def agreement_metrics(self, prefix=""):
        metrics = original(self, prefix)
        real.append(dict(metrics))
        if self.is_in_train:
            metrics[f"{prefix}tau_chain"] = next(scripted)
        return metrics

    monkeypatch.setattr(EagleTrainer, "_agreement_metrics", agreement_metrics)
    trainer = _trainer(tmp_path, drafter_for(target), target, random_rows(8, seed=4), args=args)
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_tau_chain" in h]
    assert [(h["step"], h["eval_tau_chain"]) for h in evals] == [(2, 1.5), (4, 2.0), (6, 1.2)]
    assert trainer.state.best_metric == 2.0
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-4")
    loaded = trainer.evaluate()  # the step-4 drafter, not the last one
    for key in ("eval_tau_chain", "eval_acc1_depth1", "eval_acc4_depth2"):
        assert loaded[key] == pytest.approx(real[1][key]), key
    assert any(loaded[k] != pytest.approx(real[2][k]) for k in real[2] if "depth" in k)


def test_metric_for_best_model_must_be_reported(tmp_path):
    target = tiny_target()
    for name, kw in [("acc8_depth1", {}), ("eval_acc1_depth4", {}), ("tau_chain", {"eval_top_ks": None})]:
        with pytest.raises(ValueError, match="metric_for_best_model"):
            _trainer(tmp_path, drafter_for(target), target, random_rows(4), args={"metric_for_best_model": name}, **kw)
    _trainer(tmp_path, drafter_for(target), target, random_rows(4), args={"metric_for_best_model": "acc4_depth3"})


def test_eval_teacher_forced_uses_the_same_statistics():
    from hf_eagle31 import agreement

    assert tf._position_metrics is agreement.position_metrics is position_metrics
    assert tf.label_ranks is agreement.label_ranks and tf.bootstrap_weights is agreement.bootstrap_weights


def test_cli_train_logs_agreement_and_keeps_the_best_tau_chain(tmp_path, monkeypatch):
    """`hf-eagle31 train --eval-fraction ... --metric-for-best-model tau_chain --load-best-model-at-end`: every
    evaluation logs the agreement, the best checkpoint by eval_tau_chain is the one saved, and the final evaluation
    (of that drafter) is written to eval_results.json."""
    import json

    from hf_eagle31 import cli

    target = tiny_target()
    random_rows(16, seed=2).save_to_disk(str(tmp_path / "data"))
    monkeypatch.setattr("hf_eagle31.targets.load_target", lambda name=None, dtype=torch.float32: (target, None))
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--output_dir"]
    argv += [str(tmp_path / "run"), "--eval-fraction", "0.25", "--ttt-steps", "2", "--draft-vocab-size", "48"]
    argv += ["--max_steps", "4", "--learning_rate", "3e-2", "--use_cpu", "--disable_tqdm", "true", "--report_to"]
    argv += ["none", "--eval-strategy", "steps", "--eval-steps", "2", "--save-steps", "2"]
    argv += ["--metric-for-best-model", "tau_chain", "--load-best-model-at-end", "--per_device_train_batch_size", "4"]
    assert cli.main(argv) == 0
    state = json.load(open(tmp_path / "run" / "checkpoint-4" / "trainer_state.json"))
    evals = [h for h in state["log_history"] if "eval_tau_chain" in h]
    assert [h["step"] for h in evals] == [2, 4]
    assert all("eval_acc1_depth2" in h and "eval_acc4_depth1" in h for h in evals)
    best = max(evals, key=lambda h: h["eval_tau_chain"])
    assert state["best_metric"] == best["eval_tau_chain"]
    final = json.load(open(tmp_path / "run" / "eval_results.json"))
    assert final["eval_tau_chain"] == pytest.approx(best["eval_tau_chain"])
    assert final["eval_acc1_depth1"] == pytest.approx(best["eval_acc1_depth1"])


def test_train_drafter_evaluates_the_held_out_rows_at_the_end(tmp_path):
    """With an eval split and no eval_strategy, train_drafter still ends with one evaluation (loss + agreement)."""
    import json

    from hf_eagle31.training import DrafterArguments, train_drafter

    target = tiny_target()
    trainer = train_drafter(
        random_rows(8),
        DrafterArguments(out=str(tmp_path / "out"), draft_vocab_size=48, ttt_steps=2),
        training_args=tiny_training_args(tmp_path / "run", max_steps=1),
        target=target,
        eval_dataset=random_rows(4, seed=6),
    )
    final = json.load(open(tmp_path / "run" / "eval_results.json"))
    assert {"eval_loss", "eval_acc1_depth2", "eval_tau_chain"} <= set(final)
    assert [h["step"] for h in trainer.state.log_history if "eval_tau_chain" in h] == [1]
