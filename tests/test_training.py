"""Drafter training with the HF Trainer: TTT loss alignment, online == offline, resume, accumulation, LoRA, DDP."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import warnings

import datasets
import pytest
import torch
from transformers import AutoModel, LlamaConfig, LlamaForCausalLM

from hf_eagle31.features import FeatureDataset, capture_target_features, precompute_features
from hf_eagle31.training import (
    DataArguments,
    DrafterArguments,
    EagleTrainer,
    apply_lora,
    build_drafter,
    estimate_step_memory,
    load_lora,
    merge_lora,
    train_drafter,
    ttt_loss,
)
from hf_eagle31.training.trainer import _forward_takes_return_dict, _ttt_step_logits

from conftest import SMOLLM2_SIZES, tiny_target, tiny_target_config, tiny_training_args


VOCAB = 64


def random_rows(n=12, seed=0, min_len=6, max_len=14):
    """Rows of varied length whose first 3 tokens are a "prompt" (loss_mask 0)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        ids = torch.randint(0, VOCAB, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "loss_mask": [0, 0, 0] + [1] * (length - 3)})
    return datasets.Dataset.from_list(rows)


def drafter_for(target, variant="eagle3.1", draft_vocab_size=48, seed=1):
    torch.manual_seed(seed)
    drafter = build_drafter(target.config, variant, draft_vocab_size=draft_vocab_size)
    if draft_vocab_size < VOCAB:
        drafter.set_draft_vocab(torch.arange(draft_vocab_size) * VOCAB // draft_vocab_size)
    return drafter.load_target_embeddings(target)


def args_for(tmp_path, **kw):
    return tiny_training_args(tmp_path, **{"per_device_train_batch_size": 4, "max_steps": 3, "logging_steps": 1, **kw})


def losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


# ------------------------------------------------------------------------------------------------ alignment


def test_ttt_loss_alignment_oracle_drafter():
    """
    Teacher at position p puts its mass on x_{p+1}; an oracle drafter whose step-j logits at t peak at x_{t+2+j}
    must score accuracy 1 and ~0 loss at every step, and every valid position must be counted. Any off-by-one in
    the ids, the teacher slice or the mask shift drops the accuracy to chance.
    """
    torch.manual_seed(0)
    b, n, d, steps = 2, 12, VOCAB, 4
    ids = torch.randint(0, d, (b, n))
    big = 30.0
    teacher = torch.zeros(b, n, d)
    teacher[:, :-1].scatter_(-1, ids[:, 1:, None], big)  # z_p -> x_{p+1}
    argmax = teacher.argmax(-1)
    argmax[:, -1] = -1  # no next token after the end
    logits = []
    for j in range(steps):
        lg = torch.randn(b, n, d)
        k = n - 2 - j
        lg[:, :k].scatter_(-1, ids[:, 2 + j :, None], big)  # oracle: x_{t+2+j}
        logits.append(lg)
    loss_mask = torch.ones(b, n, dtype=torch.long)
    loss_mask[0, 5] = 0  # position 5's token is a prompt token: never a target
    t2d = torch.ones(d, dtype=torch.bool)
    total, stats = ttt_loss(logits, teacher, argmax, t2d, loss_mask, decay=0.8)
    for j in range(steps):
        expected = b * (n - 2 - j) - 1  # the masked token is predicted once per step (by t = 3 - j)
        assert stats[2, j] == expected, f"step {j}: {stats[2, j]} valid positions, expected {expected}"
        assert stats[1, j] == stats[2, j], f"step {j}: oracle accuracy {stats[1, j] / stats[2, j]}"
    assert total < 1e-3
    # A drafter that is one position late (predicts x_{t+1+j}) must fail.
    late = [torch.roll(lg, shifts=1, dims=1) for lg in logits]
    _, stats_late = ttt_loss(late, teacher, argmax, t2d, loss_mask)
    assert (stats_late[1] < 0.2 * stats_late[2]).all()


def test_ttt_loss_masks_tokens_outside_draft_vocab():
    torch.manual_seed(0)
    b, n, d = 1, 8, 16
    teacher = torch.randn(b, n, d)
    argmax = torch.randint(0, d, (b, n))
    t2d = torch.zeros(d, dtype=torch.bool)
    t2d[argmax[0, 1]] = True  # only the teacher's pick at p = 1 is draftable -> only (j=0, t=0) counts
    _, stats = ttt_loss([torch.randn(b, n, d), torch.randn(b, n, d)], teacher, argmax, t2d, torch.ones(b, n))
    assert stats[2].tolist() == [1.0, 0.0]


def test_chunked_ttt_loss_equals_whole_loss():
    """Checkpointed chunks (of sizes that do and do not divide the positions) give the same loss, statistics and
    gradients as the whole loss at once."""
    torch.manual_seed(0)
    b, n, d = 2, 11, 24
    teacher = torch.randn(b, n, d)
    argmax = teacher.argmax(-1)
    t2d = torch.ones(d, dtype=torch.bool)
    loss_mask = (torch.rand(b, n) > 0.2).float()
    base = [torch.randn(b, n, d) for _ in range(3)]
    results = []
    for chunk in (0, 4, 5, 1000):
        logits = [x.clone().requires_grad_(True) for x in base]
        total, stats = ttt_loss(logits, teacher, argmax, t2d, loss_mask, chunk_size=chunk)
        total.backward()
        results.append((total.detach(), stats, [x.grad for x in logits]))
    whole = results[0]
    for total, stats, grads in results[1:]:
        assert torch.allclose(total, whole[0]) and torch.equal(stats[1:], whole[1][1:])
        assert torch.allclose(stats[0], whole[1][0])
        assert all(torch.allclose(g, w, atol=1e-7) for g, w in zip(grads, whole[2]))


# ------------------------------------------------------------------------------------------------ trainer


@pytest.mark.parametrize("variant", ["eagle3", "eagle3.1", "mtp", "mtp-postnorm"])
def test_trainer_learns_and_logs_every_variant(tmp_path, variant):
    target = tiny_target()
    drafter = drafter_for(target, variant)
    trainer = EagleTrainer(
        model=drafter,
        args=args_for(tmp_path, max_steps=6, learning_rate=1e-2),
        target=target,
        ttt_steps=3,
        train_dataset=random_rows(4),
    )
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert all(f"ttt_loss_{j}" in history[0] and f"ttt_acc_{j}" in history[0] for j in range(3))
    assert history[-1]["loss"] < history[0]["loss"]  # the same 4 rows every step: the loss must go down


def test_trainer_runs_the_ttt_unroll_through_forward(tmp_path):
    """The loss calls `model(..., ttt_steps=N, return_dict=True)` (DDP / FSDP / DeepSpeed wrappers and accelerate's
    autocast act on `forward`), never the deprecated list-returning call, and gets `ttt_forward`'s logits; a drafter
    whose remote code predates `return_dict` is called the old way."""
    target = tiny_target()
    drafter = drafter_for(target)
    trainer = EagleTrainer(
        model=drafter, args=args_for(tmp_path), target=target, ttt_steps=2, train_dataset=random_rows(4)
    )
    calls = []
    drafter.register_forward_hook(
        lambda module, args, kwargs, out: calls.append((kwargs.get("ttt_steps"), kwargs.get("return_dict"))),
        with_kwargs=True,
    )
    batch = trainer.data_collator([random_rows(2)[i] for i in range(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _, step_logits = trainer.compute_loss(drafter, batch, return_outputs=True)
    assert calls == [(2, True)]
    features, _ = capture_target_features(
        target, batch["input_ids"], batch["attention_mask"], drafter.config.target_layer_ids
    )
    expected = drafter.ttt_forward(batch["input_ids"], features, 2)
    assert len(step_logits) == 2 and all(torch.equal(a, b) for a, b in zip(step_logits, expected))

    class OlderRemoteCode(type(drafter)):  # a forward from before `return_dict`: returns the list itself
        def forward(self, input_ids, target_hidden_states=None, ttt_steps=None):
            return self.ttt_forward(input_ids, target_hidden_states, ttt_steps)

    drafter.__class__ = OlderRemoteCode
    assert not _forward_takes_return_dict(drafter)
    old = _ttt_step_logits(drafter, batch["input_ids"], features, 2, return_dict=False)
    assert all(torch.equal(a, b) for a, b in zip(old, expected))


def test_gradient_accumulation_matches_big_batch(tmp_path):
    """Batch 4 == 2 micro-batches of 2 (rows of different lengths): identical SGD update."""
    target = tiny_target()
    data = random_rows(4, min_len=5, max_len=14)
    params = []
    for batch, accumulation in ((4, 1), (2, 2)):
        drafter = drafter_for(target)
        args = args_for(
            tmp_path / f"b{batch}",
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
        )
        EagleTrainer(model=drafter, args=args, target=target, ttt_steps=3, train_dataset=data).train()
        params.append(torch.cat([p.detach().flatten() for p in drafter.parameters() if p.requires_grad]))
    moved = (
        (params[0] - torch.cat([p.detach().flatten() for p in drafter_for(target).parameters() if p.requires_grad]))
        .abs()
        .max()
    )
    assert moved > 1e-3  # the step did something
    torch.testing.assert_close(params[0], params[1], atol=1e-5, rtol=1e-4)


def test_chunked_loss_trains_like_the_whole_loss(tmp_path):
    """`loss_chunk_size` (checkpointed loss chunks) gives the same SGD update as the whole loss."""
    target = tiny_target()
    data = random_rows(4, min_len=5, max_len=14)
    params = []
    for chunk in (0, 7):
        drafter = drafter_for(target)
        args = args_for(
            tmp_path / f"c{chunk}",
            per_device_train_batch_size=4,
            max_steps=1,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
        )
        EagleTrainer(
            model=drafter, args=args, target=target, ttt_steps=3, train_dataset=data, loss_chunk_size=chunk
        ).train()
        params.append(torch.cat([p.detach().flatten() for p in drafter.parameters() if p.requires_grad]))
    torch.testing.assert_close(params[0], params[1], atol=1e-6, rtol=1e-5)


def test_loss_on_every_token(tmp_path):
    """`loss_tokens="all"` trains on prompt positions too, with the draft vocabulary still
    chosen from the assistant tokens; anything else is refused."""
    target = tiny_target()
    data = random_rows(8)
    trainers = {}
    for tokens in ("assistant", "all"):
        trainers[tokens] = train_drafter(
            data,
            DrafterArguments(out=str(tmp_path / tokens), draft_vocab_size=16, ttt_steps=2),
            DataArguments(loss_tokens=tokens),
            args_for(tmp_path / tokens, max_steps=2),
            target=target,
        )
    assert all(all(m == 1 for m in row["loss_mask"]) for row in trainers["all"].train_dataset)
    assert data[0]["loss_mask"][:3] == [0, 0, 0]  # the caller's rows are unchanged
    assert torch.equal(trainers["all"].model.t2d, trainers["assistant"].model.t2d)
    assert losses(trainers["all"]) != losses(trainers["assistant"])  # more positions: another loss
    with pytest.raises(ValueError, match="loss_tokens"):
        DataArguments(loss_tokens="prompt")


def test_online_and_offline_give_the_same_losses(tmp_path):
    target = tiny_target()
    data = random_rows(8)
    online = EagleTrainer(
        model=drafter_for(target), args=args_for(tmp_path / "on"), target=target, ttt_steps=3, train_dataset=data
    )
    online.train()
    layer_ids = online.model.config.target_layer_ids
    precompute_features(
        target, data, layer_ids, str(tmp_path / "feat"), shard_size=3, batch_size=4, show_progress=False
    )
    features = FeatureDataset(str(tmp_path / "feat"), layer_ids)
    embed, head, bias = features.load_head()
    offline_drafter = drafter_for(target)
    offline_drafter.embeddings_ready = False
    offline_drafter.load_target_embeddings(embed)
    offline = EagleTrainer(
        model=offline_drafter,
        args=args_for(tmp_path / "off"),
        teacher_head=head,
        teacher_head_bias=bias,
        ttt_steps=3,
        train_dataset=features,
    )
    offline.train()
    on_logs = [h for h in online.state.log_history if "loss" in h]
    off_logs = [h for h in offline.state.log_history if "loss" in h]
    for a, b in zip(on_logs, off_logs):
        for key in ("loss", "ttt_loss_0", "ttt_acc_2"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert len(on_logs) == len(off_logs) == 3


def test_resume_from_checkpoint_continues_with_same_losses(tmp_path):
    target = tiny_target()
    data = random_rows(16)
    kw = dict(max_steps=6, save_strategy="steps", save_steps=3)
    full = EagleTrainer(
        model=drafter_for(target), args=args_for(tmp_path / "a", **kw), target=target, ttt_steps=2, train_dataset=data
    )
    full.train()
    checkpoint = tmp_path / "a" / "checkpoint-3"
    assert (checkpoint / "model.safetensors").exists()
    resumed = EagleTrainer(
        model=drafter_for(target, seed=7),
        args=args_for(tmp_path / "b", **kw),
        target=target,
        ttt_steps=2,
        train_dataset=data,
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))
    # log_history holds the 3 restored entries, then the 3 computed after resuming.
    assert len(losses(resumed)) == 6
    assert losses(resumed)[3:] == pytest.approx(losses(full)[3:], rel=1e-5)


def test_save_model_loads_with_remote_code_and_generates(tmp_path):
    target = tiny_target()
    trainer = EagleTrainer(
        model=drafter_for(target),
        args=args_for(tmp_path, eval_strategy="steps", eval_steps=2),
        target=target,
        ttt_steps=2,
        train_dataset=random_rows(8),
        eval_dataset=random_rows(4, seed=3),
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert "eval_loss" in metrics and "eval_ttt_acc_1" in metrics
    trainer.save_model(str(tmp_path / "final"))
    loaded = AutoModel.from_pretrained(str(tmp_path / "final"), trust_remote_code=True)
    assert loaded.embeddings_ready
    torch.testing.assert_close(loaded.d2t, trainer.model.d2t)
    prompt = torch.tensor([[1, 5, 9, 2]])
    plain = target.generate(prompt, max_new_tokens=10, do_sample=False)
    spec = target.generate(prompt, assistant_model=loaded, max_new_tokens=10, num_assistant_tokens=3, do_sample=False)
    assert torch.equal(plain, spec)  # lossless greedy


def test_offline_feature_shards_are_checked_and_resumable(tmp_path):
    target = tiny_target()
    data = random_rows(7)
    out = str(tmp_path / "feat")
    layer_ids = [2, 4, 5]
    manifest = precompute_features(target, data, layer_ids, out, shard_size=3, show_progress=False)
    assert manifest["complete"] and len(manifest["shards"]) == 3
    reference = FeatureDataset(out)[4]
    # Resume: a deleted shard is recomputed identically, the others are kept.
    shard = os.path.join(out, "shard_00001.safetensors")
    untouched = os.path.getmtime(os.path.join(out, "shard_00000.safetensors"))
    os.remove(shard)
    with pytest.raises(ValueError, match="missing"):
        FeatureDataset(out)
    precompute_features(target, data, layer_ids, out, shard_size=3, show_progress=False)
    assert os.path.getmtime(os.path.join(out, "shard_00000.safetensors")) == untouched
    torch.testing.assert_close(FeatureDataset(out)[4]["target_hidden_states"], reference["target_hidden_states"])
    # Corruption: flipped bytes (same size) and truncation are both named.
    raw = bytearray(open(shard, "rb").read())
    raw[-10] ^= 0xFF
    open(shard, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="corrupted.*sha256"):
        FeatureDataset(out)
    open(shard, "wb").write(bytes(raw[:100]))
    with pytest.raises(ValueError, match="corrupted"):
        FeatureDataset(out)
    # Different data in the same directory is refused.
    with pytest.raises(ValueError, match="different settings"):
        precompute_features(target, random_rows(7, seed=9), layer_ids, out, shard_size=3, show_progress=False)


def test_lora_adapter_save_load_merge(tmp_path):
    target = tiny_target()
    base = drafter_for(target)
    peft_model = apply_lora(base, r=4, alpha=8)
    trainer = EagleTrainer(
        model=peft_model,
        args=args_for(tmp_path, learning_rate=5e-2),
        target=target,
        ttt_steps=2,
        train_dataset=random_rows(8),
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    assert os.path.exists(tmp_path / "adapter" / "adapter_model.safetensors")
    ids = torch.randint(0, VOCAB, (1, 9))
    feats = torch.randn(1, 9, 3 * 32)
    with torch.no_grad():
        adapted = peft_model.eval().ttt_forward(ids, feats, 2)[1]
        reloaded = load_lora(drafter_for(target), str(tmp_path / "adapter"))
        torch.testing.assert_close(reloaded.ttt_forward(ids, feats, 2)[1], adapted)
        merged = merge_lora(reloaded)
        torch.testing.assert_close(merged.ttt_forward(ids, feats, 2)[1], adapted, atol=1e-5, rtol=1e-4)
        fresh = drafter_for(target).ttt_forward(ids, feats, 2)[1]
        assert not torch.allclose(fresh, adapted, atol=1e-4)  # the adapter changed the drafter
    merged.save_pretrained(str(tmp_path / "merged"))
    loaded = AutoModel.from_pretrained(str(tmp_path / "merged"), trust_remote_code=True)
    assert not any("lora" in k for k in loaded.state_dict())
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    assert torch.equal(
        target.generate(prompt, assistant_model=loaded, max_new_tokens=6, num_assistant_tokens=2, do_sample=False),
        target.generate(prompt, max_new_tokens=6, do_sample=False),
    )


def test_memory_estimate_scales_with_ttt_and_length():
    config = LlamaConfig(**SMOLLM2_SIZES, intermediate_size=1536)
    drafter_config = build_drafter(
        LlamaConfig(**{**config.to_dict(), "vocab_size": 64, "num_hidden_layers": 30}), "eagle3.1"
    ).config
    drafter_config.draft_vocab_size = 32000
    one = estimate_step_memory(config, drafter_config, 1, 2048, 1)
    seven = estimate_step_memory(config, drafter_config, 1, 2048, 7)
    logits = "drafter logits kept for backward (all TTT steps, fp32, x2 for softmax)"
    assert seven[logits] == 7 * one[logits] == 7 * 2048 * 32000 * 4 * 2
    assert seven["total"] > one["total"]
    deep_config = build_drafter(
        LlamaConfig(**{**config.to_dict(), "vocab_size": 64}), "eagle3.1", num_hidden_layers=2
    ).config
    deep_config.draft_vocab_size = 32000
    deep = estimate_step_memory(config, deep_config, 1, 2048, 1)
    activations = "drafter activations (per TTT step, ~12 H-wide tensors a layer)"
    assert deep[activations] == 2 * one[activations] and deep["total"] > one["total"]
    chunked = estimate_step_memory(config, drafter_config, 1, 2048, 7, loss_chunk_size=256)
    assert chunked["drafter logits kept for backward (all TTT steps, fp32)"] == seven[logits] // 2
    assert chunked["total"] < seven["total"]


# ------------------------------------------------------------------------------------------------ learning


SYNTH_VOCAB, SYNTH_MOD, SYNTH_OFFSET = 64, 60, 4


def synthetic_sequences(n, length, generator):
    """A structured language: token 0 of a row is a stride d in {1,2,3}, then x_{t+1} = x_t + d (mod 60)."""
    stride = torch.randint(1, 4, (n, 1), generator=generator)
    start = torch.randint(0, SYNTH_MOD, (n, 1), generator=generator)
    return torch.cat([stride, (start + stride * torch.arange(length - 1)) % SYNTH_MOD + SYNTH_OFFSET], dim=1)


def mean_tau(target, drafter, prompts):
    taus = []
    for prompt in prompts:
        target.generate(
            prompt[None], assistant_model=drafter, max_new_tokens=12, num_assistant_tokens=4, do_sample=False
        )
        taus.append(drafter.last_speculation_stats.tau)
    return sum(taus) / len(taus)


def test_training_raises_tau_through_generate(tmp_path):
    """Train a tiny target on the synthetic language, self-distil it, train a drafter: tau must rise clearly."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    target = LlamaForCausalLM(
        tiny_target_config(vocab_size=SYNTH_VOCAB, num_hidden_layers=4, max_position_embeddings=64)
    )
    optimizer = torch.optim.AdamW(target.parameters(), lr=3e-3)
    for _ in range(150):
        x = synthetic_sequences(32, 16, g)
        target(x, labels=x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    target.eval()
    with torch.no_grad():  # self-distillation: the drafter learns the target's own greedy continuations
        rows = target.generate(synthetic_sequences(64, 4, g), max_new_tokens=12, do_sample=False)
    data = datasets.Dataset.from_list([{"input_ids": r.tolist(), "loss_mask": [0] * 4 + [1] * 12} for r in rows])
    prompts = synthetic_sequences(4, 4, torch.Generator().manual_seed(5))

    torch.manual_seed(1)
    drafter = build_drafter(target.config, "eagle3.1").load_target_embeddings(target)
    untrained = mean_tau(target, drafter, prompts)
    args = args_for(
        tmp_path,
        per_device_train_batch_size=16,
        max_steps=120,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=40,
    )
    EagleTrainer(model=drafter, args=args, target=target, ttt_steps=3, train_dataset=data).train()
    trained = mean_tau(target, drafter.eval(), prompts)
    assert trained >= untrained + 1.5, (untrained, trained)


# ------------------------------------------------------------------------------------------------ pipeline, CLI, DDP


def test_train_drafter_offline_pipeline_picks_draft_vocab(tmp_path, caplog):
    target = tiny_target()
    data = random_rows(6)
    with caplog.at_level("INFO", logger="hf_eagle31"):  # the draft vocabulary's coverage is logged
        trainer = train_drafter(
            data,
            DrafterArguments(out=str(tmp_path / "out"), variant="eagle3", draft_vocab_size=40, ttt_steps=2),
            DataArguments(offline_features=str(tmp_path / "feat")),
            args_for(tmp_path / "run", max_steps=2),
            target=target,
        )
    assert trainer.target is None  # offline: the trainer never held the target
    assert "draft vocabulary: 40/64" in caplog.text
    loaded = AutoModel.from_pretrained(str(tmp_path / "out"), trust_remote_code=True)
    counts = torch.bincount(
        torch.tensor([t for r in data for t, m in zip(r["input_ids"], r["loss_mask"]) if m]), minlength=VOCAB
    )
    assert counts[loaded.t2d].sum() >= counts.sort(descending=True).values[:40].sum()  # the 40 most frequent
    card = (tmp_path / "out" / "README.md").read_text()  # the final save writes the model card (hf_eagle31.hub)
    assert "EAGLE-3 drafter" in card and "No evaluation results" in card


def test_train_drafter_warm_starts_the_head_from_the_target(tmp_path):
    target = tiny_target()
    frozen = dict(max_steps=1, learning_rate=0.0)  # no update: what is saved is the initialisation
    train_drafter(
        random_rows(4),
        DrafterArguments(out=str(tmp_path / "t"), draft_vocab_size=40, ttt_steps=1),
        training_args=args_for(tmp_path / "rt", **frozen),
        target=target,
    )
    train_drafter(
        random_rows(4),
        DrafterArguments(out=str(tmp_path / "r"), draft_vocab_size=40, ttt_steps=1, head_init="random"),
        training_args=args_for(tmp_path / "rr", **frozen),
        target=target,
    )
    warm = AutoModel.from_pretrained(str(tmp_path / "t"), trust_remote_code=True)
    cold = AutoModel.from_pretrained(str(tmp_path / "r"), trust_remote_code=True)
    rows = target.lm_head.weight[warm.draft_to_target_ids]
    assert torch.equal(warm.lm_head.weight, rows) and not torch.allclose(cold.lm_head.weight, rows)
    with pytest.raises(ValueError, match="head_init"):
        DrafterArguments(out=str(tmp_path / "x"), head_init="zeros")


def test_drafter_arguments_reach_the_drafter_and_its_adapter(tmp_path):
    """`target_name_or_path` is recorded in the drafter config; `lora_r` / `lora_dropout` / `lora_target_modules`
    shape the adapter trained on `init_from`; bad values are refused when the arguments are built, and a call that
    leaves out `out` or passes a name where a loaded model goes is refused naming the fix."""
    from hf_eagle31.errors import InputError

    target = tiny_target()
    base = DrafterArguments(
        out=str(tmp_path / "base"), draft_vocab_size=40, ttt_steps=1, target_name_or_path="org/tiny-target"
    )
    train_drafter(random_rows(4), base, None, args_for(tmp_path / "rb", max_steps=1), target=target)
    assert json.load(open(tmp_path / "base" / "config.json"))["target_name_or_path"] == "org/tiny-target"
    adapter = DrafterArguments(
        out=str(tmp_path / "lora"),
        init_from=str(tmp_path / "base"),
        ttt_steps=1,
        lora_r=2,
        lora_dropout=0.25,
        lora_target_modules=["fc"],
    )
    trainer = train_drafter(random_rows(4), adapter, None, args_for(tmp_path / "rl", max_steps=1), target=target)
    config = trainer.model.peft_config["default"]
    assert (config.r, config.lora_dropout, set(config.target_modules)) == (2, 0.25, {"fc"})
    assert json.load(open(tmp_path / "lora" / "adapter_config.json"))["r"] == 2
    bad_values = [
        (dict(lora_dropout=1.0), "--lora-dropout"),
        (dict(max_minutes=float("nan")), "--max-minutes"),
        (dict(target_dtype="int8"), "target_dtype"),
        (dict(variant="eagle9"), "variant"),
        (dict(loss_objective="mse"), "loss_objective"),
    ]
    for bad, name in bad_values:
        with pytest.raises(InputError, match=name):
            DrafterArguments(**bad)
    with pytest.raises(InputError, match=r"DrafterArguments\(out=DIR\)"):
        train_drafter(random_rows(4), DrafterArguments(), target=target)
    with pytest.raises(InputError, match="init_from="):
        train_drafter(random_rows(4), DrafterArguments(out=str(tmp_path / "x")), drafter=str(tmp_path / "base"))


def test_the_old_keyword_call_warns_and_trains_the_same_drafter(tmp_path):
    """`train_drafter(dataset, output_dir, target=..., ...)`, the call before the dataclasses, still runs with a
    DeprecationWarning and trains exactly what the dataclass call trains; its `drafter_overrides` and `lora` dict
    reach the same options, and an override without a DrafterArguments field is refused in one line."""
    from safetensors.torch import load_file

    from hf_eagle31.errors import InputError

    target = tiny_target()
    data = random_rows(6)
    torch.manual_seed(3)  # the fresh drafter's initial weights
    new = train_drafter(
        data,
        DrafterArguments(out=str(tmp_path / "new"), draft_vocab_size=40, ttt_steps=2, num_layers=2),
        None,
        args_for(tmp_path / "rn", max_steps=2),
        target=target,
    )
    torch.manual_seed(3)
    with pytest.warns(DeprecationWarning, match="DrafterArguments"):
        old = train_drafter(
            data,
            str(tmp_path / "old"),
            target=target,
            draft_vocab_size=40,
            ttt_steps=2,
            drafter_overrides={"num_hidden_layers": 2},
            training_args=args_for(tmp_path / "ro", max_steps=2),
        )
    assert losses(old) == losses(new) and len(losses(new)) == 2
    saved = load_file(str(tmp_path / "new" / "model.safetensors"))
    assert saved.keys() == load_file(str(tmp_path / "old" / "model.safetensors")).keys()
    for name, tensor in load_file(str(tmp_path / "old" / "model.safetensors")).items():
        assert torch.equal(tensor, saved[name]), name
    with pytest.warns(DeprecationWarning):
        adapted = train_drafter(
            data,
            str(tmp_path / "lora"),
            target=target,
            drafter=old.model,
            ttt_steps=2,
            lora={"r": 2, "target_modules": ["fc"]},
            training_args=args_for(tmp_path / "rl", max_steps=1),
        )
    config = adapted.model.peft_config["default"]
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (2, 16, {"fc"})
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    with pytest.warns(DeprecationWarning), pytest.raises(InputError, match="drafter_overrides.*rms_norm_eps"):
        train_drafter(data, str(tmp_path / "x"), target=target, drafter_overrides={"rms_norm_eps": 1e-5})


def test_cli_train_accepts_training_arguments(tmp_path, monkeypatch):
    from hf_eagle31 import cli

    target = tiny_target()
    random_rows(6).save_to_disk(str(tmp_path / "data"))
    monkeypatch.setattr("hf_eagle31.targets.load_target", lambda name=None, dtype=torch.float32: (target, None))
    code = cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--variant",
            "mtp-postnorm",
            "--out",
            str(tmp_path / "out"),
            "--ttt-steps",
            "2",
            "--draft-vocab-size",
            "32",
            "--max_steps",
            "2",
            "--learning_rate",
            "1e-3",
            "--use_cpu",
            "--logging_steps",
            "1",
            "--per_device_train_batch_size",
            "3",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    config = json.load(open(tmp_path / "out" / "config.json"))
    assert config["model_type"] == "mtp_drafter" and config["norm_output"] and config["draft_vocab_size"] == 32
    assert config["target_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the default target's Hub id
    state = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert state.max_steps == 2 and state.per_device_train_batch_size == 3


def test_cli_train_sets_depth_and_mlp_width_of_a_fresh_drafter(tmp_path, monkeypatch):
    """`--num-layers` / `--intermediate-size` reach the fresh drafter's config (the target's 8 layers stay
    `target_num_hidden_layers`); they are refused with --init-from, and out-of-range values are refused."""
    from hf_eagle31 import cli

    target = tiny_target()
    random_rows(6).save_to_disk(str(tmp_path / "data"))
    monkeypatch.setattr("hf_eagle31.targets.load_target", lambda name=None, dtype=torch.float32: (target, None))
    code = cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
            "--num-layers",
            "2",
            "--intermediate-size",
            "40",
            "--ttt-steps",
            "2",
            "--draft-vocab-size",
            "32",
            "--max_steps",
            "1",
            "--use_cpu",
            "--per_device_train_batch_size",
            "3",
            "--disable_tqdm",
            "true",
            "--loss-chunk-size",
            "5",
        ]
    )
    assert code == 0
    config = json.load(open(tmp_path / "out" / "config.json"))
    assert (config["num_hidden_layers"], config["intermediate_size"], config["target_num_hidden_layers"]) == (2, 40, 8)
    loaded = AutoModel.from_pretrained(str(tmp_path / "out"), trust_remote_code=True)
    assert len(loaded.layers) == 2 and loaded.layers[1].mlp.up_proj.out_features == 40
    assert DrafterArguments().drafter_overrides() == {"num_hidden_layers": 1}  # MLP width: the target's
    for bad in (
        dict(num_layers=0),
        dict(intermediate_size=0),
        dict(init_from="d", num_layers=2),
        dict(loss_chunk_size=-1),
    ):
        with pytest.raises(ValueError, match="--num-layers|--intermediate-size|--loss-chunk-size"):
            DrafterArguments(**bad)
    with pytest.raises(ValueError, match="num_layers"):
        train_drafter(
            random_rows(4), DrafterArguments(out=str(tmp_path / "x"), num_layers=3), target=target, drafter=loaded
        )


@pytest.mark.parametrize("variant", ["eagle3", "eagle3.1"])
def test_cli_train_bf16_on_cpu(tmp_path, monkeypatch, variant):
    """`--bf16` trains with bf16 autocast on a CPU-only machine (no `--use_cpu` needed), with a finite loss."""
    from hf_eagle31 import cli

    target = tiny_target()
    random_rows(6).save_to_disk(str(tmp_path / "data"))
    monkeypatch.setattr("hf_eagle31.targets.load_target", lambda name=None, dtype=torch.float32: (target, None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--variant",
            variant,
            "--out",
            str(tmp_path / "out"),
            "--ttt-steps",
            "3",
            "--draft-vocab-size",
            "32",
            "--max_steps",
            "2",
            "--bf16",
            "--logging_steps",
            "1",
            "--per_device_train_batch_size",
            "3",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    state = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert state.bf16 and state.use_cpu
    history = json.load(open(next((tmp_path / "out").glob("checkpoint-*/trainer_state.json"))))["log_history"]
    assert all(math.isfinite(h["loss"]) for h in history if "loss" in h)


def ddp_eval_rows():
    """Held-out rows of the two-process test: 6 rows of varied length, 3 per process."""
    g = torch.Generator().manual_seed(5)
    return [
        {"input_ids": torch.randint(0, 64, (n,), generator=g).tolist(), "loss_mask": [0] * 3 + [1] * (n - 3)}
        for n in (12, 9, 11, 8, 10, 12)
    ]


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    import datasets
    from transformers import TrainingArguments
    from conftest import tiny_target
    from hf_eagle31.training import EagleTrainer, build_drafter
    from test_training import ddp_eval_rows

    target = tiny_target()
    torch.manual_seed(1)
    drafter = build_drafter(target.config, "eagle3.1").load_target_embeddings(target)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(0, 64, (10,), generator=g).tolist(), "loss_mask": [0, 0] + [1] * 8}
            for _ in range(8)]
    args = TrainingArguments(output_dir=sys.argv[1], per_device_train_batch_size=2, max_steps=2, use_cpu=True,
                             report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1)
    trainer = EagleTrainer(model=drafter, args=args, target=target, ttt_steps=2,
                           train_dataset=datasets.Dataset.from_list(rows))
    trainer.train()
    checksum = sum(float(p.detach().double().sum()) for p in drafter.parameters() if p.requires_grad)
    # The agreement metrics of a fresh drafter (another trainer: evaluating before `train` would keep the Trainer
    # from wrapping the model in DDP) on 6 held-out rows, 3 per process, gathered.
    torch.manual_seed(1)
    fresh = build_drafter(target.config, "eagle3.1").load_target_embeddings(target)
    evaluated = EagleTrainer(model=fresh, args=args, target=target, ttt_steps=2, train_dataset=rows).evaluate(
        datasets.Dataset.from_list(ddp_eval_rows()))
    out = {"rank": args.process_index, "world": args.world_size, "checksum": checksum,
           "loss": [h["loss"] for h in trainer.state.log_history if "loss" in h], "eval": evaluated}
    json.dump(out, open(os.path.join(sys.argv[1], f"rank{args.process_index}.json"), "w"))
    # Both ranks are done and have written their results. Interpreter shutdown sometimes aborts in native thread
    # teardown ("terminate called without an active exception", SIGABRT, seen 1 run in ~3 after both result files
    # were written), so tear the process group down and leave without it.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.slow  # two processes, each loading torch and transformers
def test_accelerate_launch_two_processes_data_parallel(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free rendezvous port: other test runs may share this machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # `--multi_gpu` is accelerate's torchrun launcher; the script's `use_cpu=True` makes the Trainer use gloo on CPU
    # (`--cpu` with several processes would need mpirun).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--main_process_port",
            str(port),
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(script),
            str(tmp_path),
            tests_dir,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9)  # gradients were all-reduced
    assert ranks[0]["loss"] == pytest.approx(ranks[1]["loss"])  # the logged loss is the global one
    # The agreement metrics gather every process's rows: both ranks report what one process reports on all rows.
    target = tiny_target()
    torch.manual_seed(1)
    drafter = build_drafter(target.config, "eagle3.1").load_target_embeddings(target)
    single = EagleTrainer(
        model=drafter, args=tiny_training_args(tmp_path / "one"), target=target, ttt_steps=2, train_dataset=[]
    ).evaluate(datasets.Dataset.from_list(ddp_eval_rows()))
    keys = [k for k in single if "depth" in k and "halfwidth" not in k] + ["eval_tau_chain", "eval_tf_positions"]
    assert len(keys) == 2 * 2 + 2
    for rank in ranks:
        assert {k: rank["eval"][k] for k in keys} == pytest.approx({k: single[k] for k in keys})
