"""Faults and concurrency (issue 27): no run destroys data, passes off a broken result as a trained drafter, or fights
another run. Each test fails on the code before its fix; the subprocess ones (SIGKILL at a save point, two runs at
once) are in the slow tier."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch

from hf_eagle31.cli import main
from hf_eagle31.data import prepare as prepare_module
from hf_eagle31.data.conversations import load_conversations
from hf_eagle31.data.prepare import load_prepared, prepare_dataset
from hf_eagle31.errors import InputError
from hf_eagle31.loading import load_drafter
from hf_eagle31.targets import target_cache_dir
from hf_eagle31.training import DrafterArguments, EagleTrainer, build_drafter, train_drafter
from hf_eagle31.utils.io import output_lock, partial_path, write_errors_name

from conftest import make_drafter, save_tiny_setup, tiny_chat_tokenizer, tiny_target, tiny_training_args


ROOT = Path(__file__).resolve().parents[1]


def train_args(out, **kw):
    return tiny_training_args(out, **kw)


def rows(n=6, length=10):
    g = torch.Generator().manual_seed(0)
    return datasets.Dataset.from_list(
        [
            {"input_ids": torch.randint(0, 64, (length,), generator=g).tolist(), "loss_mask": [0, 0, 0] + [1] * 7}
            for _ in range(n)
        ]
    )


def conv(user, reply):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("hf-eagle31 "), err
    return err[-1]


# ------------------------------------------------------------------------------------------------ 1: never destroy


def test_convert_overwrite_never_removes_a_folder_holding_the_source(tmp_path, capsys):
    target = tiny_target()
    parent = tmp_path / "work"
    make_drafter(target).save_pretrained(parent / "drafter")
    (parent / "notes.txt").write_text("mine")
    code = main(["convert", str(parent / "drafter"), str(parent), "--to", "vllm", "--overwrite"])
    assert code == 2 and "contains the source" in error_line(capsys)
    assert (parent / "notes.txt").read_text() == "mine" and (parent / "drafter" / "config.json").is_file()
    # --overwrite replaces only a drafter of ours: a folder with other files is refused, one of ours replaced.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    assert main(["convert", str(parent / "drafter"), str(tmp_path / "other"), "--to", "vllm", "--overwrite"]) == 2
    assert "not a drafter written by hf-eagle31" in error_line(capsys)
    assert (tmp_path / "other" / "thesis.tex").is_file()
    assert main(["convert", str(parent / "drafter"), str(tmp_path / "v"), "--to", "vllm"]) == 0
    again = ["convert", str(parent / "drafter"), str(tmp_path / "v"), "--to", "speculators", "--overwrite"]
    assert main(again) == 0
    assert not partial_path(tmp_path / "v").exists()


def test_convert_write_failure_names_the_path_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    target = tiny_target()
    make_drafter(target).save_pretrained(tmp_path / "d")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("hf_eagle31.convert.checkpoint.write_safetensors", full_disk)
    assert main(["convert", str(tmp_path / "d"), str(tmp_path / "out"), "--to", "vllm"]) == 2
    line = error_line(capsys)
    assert "no space left" in line and str(tmp_path / "out") in line
    assert not (tmp_path / "out").exists() and not partial_path(tmp_path / "out").exists()


def test_safetensors_write_error_is_not_called_unreadable(tmp_path):
    from safetensors import SafetensorError

    with pytest.raises(OSError, match="cannot write .*no space left"):
        with write_errors_name(tmp_path):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def test_prepare_data_out_is_protected_and_written_whole(tmp_path, monkeypatch):
    tok = tiny_chat_tokenizer()
    kw = dict(max_length=64, show_progress=False)
    first, _ = prepare_dataset(tok, [conv("w1 w2", "w3 w4 w5")], out_dir=str(tmp_path / "d"), **kw)
    with pytest.raises(InputError, match="exists and is not empty.*--overwrite"):
        prepare_dataset(tok, [conv("w7", "w8 w9")], out_dir=str(tmp_path / "d"), **kw)
    # the source of the conversations is never the output
    with pytest.raises(InputError, match="contains the source"):
        prepare_dataset(
            tok, [conv("w7", "w8")], out_dir=str(tmp_path), sources=[str(tmp_path / "d")], overwrite=True, **kw
        )
    # a run that fails half-way leaves the previous complete set, not a half
    monkeypatch.setattr(prepare_module, "asdict", lambda report: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        prepare_dataset(tok, [conv("w7", "w8 w9")] * 3, out_dir=str(tmp_path / "d"), overwrite=True, **kw)
    assert [r["input_ids"] for r in load_prepared(str(tmp_path / "d"))] == [first[0]["input_ids"]]


def test_interrupted_regeneration_keeps_the_old_set_and_resumes_identically(tmp_path, monkeypatch):
    tok, target = tiny_chat_tokenizer(), tiny_target()
    convs = [conv(f"w{i} w{i + 1}", "w3") for i in range(5)]
    kw = dict(target=target, regenerate=True, batch_size=2, max_new_tokens=4, max_length=64, show_progress=False)
    reference, _ = prepare_dataset(tok, convs, out_dir=str(tmp_path / "ref"), **kw)
    old, _ = prepare_dataset(tok, convs[:1], out_dir=str(tmp_path / "d"), **{**kw, "regenerate": False, "target": None})
    real = prepare_module._regenerate_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "_regenerate_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(tok, convs, out_dir=str(tmp_path / "d"), overwrite=True, **kw)
    assert len(load_prepared(str(tmp_path / "d"))) == len(old)  # the old set, whole
    monkeypatch.setattr(prepare_module, "_regenerate_batch", real)
    resumed, _ = prepare_dataset(tok, convs, out_dir=str(tmp_path / "d"), overwrite=True, **kw)
    assert resumed["input_ids"] == reference["input_ids"]
    assert not partial_path(tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------------ 4: empty inputs


def test_empty_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no conversations"):
        load_conversations(str(empty))
    convs = tmp_path / "c.jsonl"
    convs.write_text(json.dumps({"messages": conv("a", "b")}) + "\n")
    with pytest.raises(InputError, match="before --skip 5"):
        load_conversations(str(convs), skip=5)
    system_only = tmp_path / "s.jsonl"
    system_only.write_text(json.dumps({"messages": [{"role": "system", "content": "x"}]}) + "\n")
    with pytest.raises(InputError, match="no conversations"):
        load_conversations(str(system_only))
    with pytest.raises(InputError, match="no training sequences"):
        prepare_dataset(tiny_chat_tokenizer(), [[{"role": "user", "content": "w1"}]], str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()
    datasets.Dataset.from_dict({"input_ids": [], "loss_mask": []}).save_to_disk(str(tmp_path / "zero"))
    with pytest.raises(InputError, match="no training rows"):
        load_prepared(str(tmp_path / "zero"))


# ------------------------------------------------------------------------------------------------ 2: one writer


def test_output_lock_names_the_holder_and_takes_over_a_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hf_eagle31.utils.io import output_lock\n"
            f"with output_lock({str(tmp_path / 'out')!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"being written by another run \\(pid {holder.pid}\\)"):
            with output_lock(tmp_path / "out"):
                pass
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            train_drafter(
                rows(),
                DrafterArguments(out=str(tmp_path / "out")),
                None,
                train_args(tmp_path / "out"),
                target=tiny_target(),
            )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with output_lock(tmp_path / "out"):  # the dead holder's lock file is taken over
        pass


# ------------------------------------------------------------------------------------------------ 3, 4: training


def test_finished_run_resumed_trains_nothing_and_keeps_its_drafter(tmp_path):
    target = tiny_target()
    kw = dict(max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=4)
    drafter_args = DrafterArguments(out=str(tmp_path), draft_vocab_size=64, ttt_steps=1)
    train_drafter(rows(), drafter_args, None, train_args(tmp_path, **kw), target=target)
    weights = (tmp_path / "model.safetensors").read_bytes()
    again = train_drafter(
        rows(), drafter_args, None, train_args(tmp_path, resume_from_checkpoint="latest", **kw), target=target
    )
    assert again.finished_before and again.state.global_step == 4
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (tmp_path / "model.safetensors").read_bytes() == weights


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_time_budget_stops_unfinished_and_resumes_to_the_same_run(tmp_path):
    """`max_minutes` (`hf-eagle31 train --max-minutes`): past the budget the step that ends is saved as a checkpoint
    and the run stops unfinished (no drafter in the output, `stopped_by_budget`); each budgeted resume trains on
    from there, the one reaching max_steps saves the drafter, and the result is the uninterrupted run's."""
    target = tiny_target()
    kw = dict(max_steps=4, per_device_train_batch_size=4, logging_steps=1)

    def run(out, **more):
        return train_drafter(
            rows(),
            DrafterArguments(out=str(out), draft_vocab_size=64, ttt_steps=1),
            training_args=train_args(out, **kw, **more),
            target=target,
        )

    torch.manual_seed(1)  # the fresh drafter's initial weights
    full = run(tmp_path / "full")
    torch.manual_seed(1)
    steps = []
    for call in range(4):  # a budget of ~0: every call stops after its first step
        resume = {"resume_from_checkpoint": "latest"} if call else {}
        trainer = train_drafter(
            rows(),
            DrafterArguments(out=str(tmp_path / "b"), draft_vocab_size=64, ttt_steps=1, max_minutes=1e-9),
            training_args=train_args(tmp_path / "b", **kw, **resume),
            target=target,
        )
        steps.append((trainer.state.global_step, trainer.stopped_by_budget, trainer.finished_before))
        if call < 3:  # stopped short of max_steps: a complete checkpoint, no drafter, not finished
            assert (tmp_path / "b" / f"checkpoint-{call + 1}" / "trainer_state.json").is_file()
            assert not (tmp_path / "b" / "model.safetensors").exists()
    assert steps == [(1, True, False), (2, True, False), (3, True, False), (4, False, False)]
    assert (tmp_path / "b" / "model.safetensors").is_file()  # the call reaching max_steps finished the run
    for name, tensor in _weights(tmp_path / "full").items():
        torch.testing.assert_close(_weights(tmp_path / "b")[name], tensor, rtol=1e-5, atol=1e-6)
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert logged == pytest.approx([h["loss"] for h in full.state.log_history if "loss" in h], rel=1e-5)
    again = run(tmp_path / "b", resume_from_checkpoint="latest")  # finished now: a resume trains nothing
    assert again.finished_before and again.state.global_step == 4


def test_time_budget_without_checkpoints_saves_one_and_is_checked(tmp_path, capsys):
    target = tiny_target()
    trainer = train_drafter(
        rows(),
        DrafterArguments(out=str(tmp_path), draft_vocab_size=64, ttt_steps=1, max_minutes=1e-9),
        training_args=train_args(tmp_path, max_steps=3, per_device_train_batch_size=4),  # save_strategy "no"
        target=target,
    )
    assert trainer.stopped_by_budget and trainer.state.global_step == 1
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-1"]
    assert not (tmp_path / "model.safetensors").exists()
    with pytest.raises(InputError, match="--max-minutes"):
        train_drafter(rows(), DrafterArguments(out=str(tmp_path / "x"), max_minutes=0), target=target)
    for value in ("0", "-1", "nan"):  # argparse's own one-line error (the option's declared type)
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--max-minutes", value])
        assert exit_.value.code == 2 and "--max-minutes" in error_line(capsys)


def test_diverged_training_stops_and_saves_nothing(tmp_path):
    target = tiny_target()
    args = train_args(tmp_path / "o", learning_rate=1e30, max_steps=6, max_grad_norm=0.0)
    with pytest.raises(InputError, match="training diverged"):
        train_drafter(
            rows(),
            DrafterArguments(out=str(tmp_path / "o"), draft_vocab_size=64, ttt_steps=1),
            None,
            args,
            target=target,
        )
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_drafters_with_non_finite_weights_are_refused(tmp_path):
    target = tiny_target()
    drafter = make_drafter(target)
    with torch.no_grad():
        drafter.fc.weight[0, 0] = float("nan")
    drafter.save_pretrained(tmp_path / "nan")
    with pytest.raises(InputError, match="NaN/inf"):
        load_drafter(str(tmp_path / "nan"), target)


REMOTE_LOAD = """
import sys
sys.modules["hf_eagle31"] = None  # the remote code alone, with transformers
from transformers import AutoModel
try:
    AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
except ValueError as error:
    print("refused:", error)
else:
    print("loaded")
"""


def test_remote_code_refuses_non_finite_weights_naming_the_file(tmp_path):
    """`AutoModel.from_pretrained(dir, trust_remote_code=True)` (transformers alone) refuses a NaN / inf drafter in one
    line naming its weights file and the fix; a finite one loads; a sharded checkpoint names the shard."""
    target = tiny_target()
    drafter = make_drafter(target)
    drafter.save_pretrained(tmp_path / "ok")
    with torch.no_grad():
        drafter.layers[0].mlp.down_proj.weight[1, 2] = float("inf")
    drafter.save_pretrained(tmp_path / "inf")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = {}
    for name in ("ok", "inf"):
        run = subprocess.run([sys.executable, "-c", REMOTE_LOAD, str(tmp_path / name)], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        out[name] = run.stdout.strip().splitlines()
    assert out["ok"] == ["loaded"]
    assert len(out["inf"]) == 1, out["inf"]
    line = out["inf"][0]
    assert line.startswith(f"refused: {tmp_path / 'inf' / 'model.safetensors'}: weight layers.0.mlp.down_proj.weight")
    assert "NaN/inf" in line and "resume from its last checkpoint" in line
    # in process too (the package's classes), and a sharded checkpoint names the shard that holds the tensor
    drafter.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    index = json.loads((tmp_path / "shards" / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["layers.0.mlp.down_proj.weight"]
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'shards' / shard))}: weight layers"):
        type(drafter).from_pretrained(tmp_path / "shards")


def test_truncated_optimizer_state_is_a_one_line_error(tmp_path):
    target = tiny_target()
    args = train_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    drafter = build_drafter(target.config, "eagle3", draft_vocab_size=64).load_target_embeddings(target)
    EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows()).train()
    optimizer = tmp_path / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    args = train_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    drafter = build_drafter(target.config, "eagle3", draft_vocab_size=64).load_target_embeddings(target)
    with pytest.raises(InputError, match="optimizer / scheduler state is unreadable"):
        EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows()).train("latest")


def test_unknown_drafter_type_is_not_taken_for_a_foreign_format(tmp_path, capsys):
    target = tiny_target()
    make_drafter(target).save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    config["model_type"] = "eagle4_drafter"
    config.pop("auto_map", None)
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="`eagle4_drafter` drafter, which this hf-eagle31 release does not know"):
        load_drafter(str(tmp_path / "d"), target)
    assert main(["convert", str(tmp_path / "d"), str(tmp_path / "out"), "--to", "hf-eagle31"]) == 2
    assert "does not know" in error_line(capsys) and not (tmp_path / "out").exists()


def test_merge_lora_without_lora_r_is_refused(tmp_path, capsys):
    rows().save_to_disk(str(tmp_path / "data"))
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"), "--merge-lora"]) == 2
    assert "--merge-lora" in error_line(capsys)


def test_train_refuses_an_output_inside_the_data(tmp_path, capsys):
    rows().save_to_disk(str(tmp_path / "data"))
    before = sorted(os.listdir(tmp_path / "data"))
    for out in (tmp_path / "data", tmp_path / "data" / "drafter"):
        assert main(["train", "--data", str(tmp_path / "data"), "--out", str(out)]) == 2
        assert "lies inside --data" in error_line(capsys)
    assert sorted(os.listdir(tmp_path / "data")) == before


# ------------------------------------------------------------------------------------------------ 6: slow, real faults


def _cli(*argv, env=None, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "hf_eagle31.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        cwd=ROOT,
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    _, _, target_dir, _, _ = save_tiny_setup(root)
    with open(root / "c.jsonl", "w") as f:
        for i in range(8):
            f.write(json.dumps({"messages": conv(" ".join(f"w{(i + j) % 30}" for j in range(5)), "w1 w2 w3 w4 w5")}))
            f.write("\n")
    _cli(
        "prepare-data", "--target", target_dir, "--source", root / "c.jsonl", "--no-regenerate", "--out", root / "data"
    )
    return root, target_dir


def _train_argv(root, target_dir, out, *extra):
    return [
        "train", "--data", root / "data", "--target", target_dir, "--out", out, "--ttt-steps", "1",
        "--draft-vocab-size", "32", "--per_device_train_batch_size", "4", "--use_cpu", "--disable_tqdm", "true",
        "--report_to", "none", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_the_final_save_leaves_no_drafter_and_resume_finishes(prepared, tmp_path):
    root, target_dir = prepared
    argv = _train_argv(root, target_dir, tmp_path / "o", "--max_steps", "2", "--save_steps", "2")
    killed = _cli(*argv, env={"HF_EAGLE31_KILL_AT": "final"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "o" / "model.safetensors").exists()  # not a half that looks whole
    done = _cli(*argv, "--resume_from_checkpoint", "latest")
    assert "already finished" in done.stdout and (tmp_path / "o" / "model.safetensors").is_file()
    assert not (tmp_path / "o" / ".final.partial").exists()


@pytest.mark.slow
def test_sigkill_at_a_checkpoint_save_is_skipped_on_resume(prepared, tmp_path):
    root, target_dir = prepared
    argv = _train_argv(root, target_dir, tmp_path / "o", "--max_steps", "2", "--save_steps", "1")
    killed = _cli(*argv, env={"HF_EAGLE31_KILL_AT": "checkpoint"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "o" / "model.safetensors").exists()
    _cli(*argv, "--resume_from_checkpoint", "latest", check=False)  # nothing complete yet: one-line refusal or train
    assert main(["info", "--target", str(target_dir), "--drafter", str(tmp_path / "o")]) == 2  # no drafter there


@pytest.mark.slow
def test_two_trainings_into_one_out_one_is_refused(prepared, tmp_path):
    root, target_dir = prepared
    argv = _train_argv(root, target_dir, tmp_path / "o", "--save_steps", "5", "--save_total_limit", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "hf_eagle31.cli", *map(str, argv), "--max_steps", "1000000"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        lock = tmp_path / ".o.lock"
        for _ in range(1200):
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.1)
        second = _cli(*argv, "--max_steps", "2", check=False)
        assert first.poll() is None  # still training: the second run met it
        assert second.returncode == 2 and f"being written by another run (pid {first.pid})" in second.stderr
    finally:
        first.kill()
        first.wait()
    # the killed run's lock is stale: the next run takes it over (and, past --max_steps, trains nothing)
    third = _cli(*argv, "--max_steps", "1", "--resume_from_checkpoint", "latest")
    assert "already finished" in third.stdout


# ------------------------------------------------------------------------------------------------ 5: bounds


def test_ttt_steps_longer_than_the_sequences_are_refused(tmp_path):
    with pytest.raises(InputError, match="--ttt-steps 100000 is longer than the sequences allow"):
        train_drafter(
            rows(),
            DrafterArguments(out=str(tmp_path), ttt_steps=100000),
            None,
            train_args(tmp_path),
            target=tiny_target(),
        )


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_temperatures_are_refused(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "prepare-data",
                "--source",
                str(tmp_path / "c.jsonl"),
                "--out",
                str(tmp_path / "d"),
                "--temperature",
                value,
            ]
        )
    assert exit_.value.code == 2 and "--temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--temperature", value])
    with pytest.raises(SystemExit):
        main(["bench", "--confidence-threshold", "1.5"])


def test_json_dash_is_stdout(tmp_path, capsys, monkeypatch):
    from hf_eagle31.commands.common import write_json_report

    monkeypatch.chdir(tmp_path)
    write_json_report("-", {"tau": 2.5})
    assert json.loads(capsys.readouterr().out) == {"tau": 2.5} and not (tmp_path / "-").exists()


def test_utf8_bom_jsonl_is_read(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"messages": conv("a", "b")}) + "\n").encode())
    assert load_conversations(str(path)) == [conv("a", "b")]


def test_eval_fraction_writes_no_cache_files_into_the_data(tmp_path):
    _, _, target_dir, _, _ = save_tiny_setup(tmp_path)
    rows().save_to_disk(str(tmp_path / "data"))
    before = sorted(os.listdir(tmp_path / "data"))
    argv = ["train", "--data", str(tmp_path / "data"), "--target", str(target_dir), "--eval-fraction", "0.5"]
    assert main([*argv, "--estimate-memory", "--ttt-steps", "2"]) == 0
    assert sorted(os.listdir(tmp_path / "data")) == before


# ------------------------------------------------------------------------------------------------ 2: one writer, more

BUILDER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import tiny_chat_tokenizer, tiny_target
from hf_eagle31 import targets

log, ready = Path({log!r}), Path({ready!r})

def slow_build(gguf, dtype):  # stands in for fetch + dequantize of the real GGUF
    with open(log, "a") as f:
        f.write(f"build {{os.getpid()}}\\n")
    time.sleep(2)  # the other run arrives while this one holds the cache lock
    return tiny_target(), tiny_chat_tokenizer()

targets.fetch = lambda name: Path("unused.gguf")
targets._load_gguf = slow_build
(ready / str(os.getpid())).touch()
for _ in range(600):  # start together
    if len(os.listdir(ready)) >= 2:
        break
    time.sleep(0.05)
model, tokenizer = targets.load_target()
print("loaded", model.config.hidden_size, len(tokenizer), flush=True)
"""


@pytest.mark.slow
def test_two_first_time_builders_of_the_target_cache_build_it_once(tmp_path):
    """Two runs that need the default target's cache at once: one builds it, the other waits for the lock and reads
    the first one's copy; never two builds, never a half copy (no `.partial` / `.old` left)."""
    (tmp_path / "ready").mkdir()
    script = BUILDER.format(tests=str(ROOT / "tests"), log=str(tmp_path / "log"), ready=str(tmp_path / "ready"))
    env = {**os.environ, "HF_EAGLE31_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=tmp_path) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-2000:]
        assert out.strip() == "loaded 32 64", out
    builds = (tmp_path / "log").read_text().splitlines()
    assert len(builds) == 1 and builds[0].split()[1] in {str(run.pid) for run in runs}, builds
    name = target_cache_dir().name
    targets_dir = tmp_path / "cache" / "targets"
    assert sorted(os.listdir(targets_dir)) == sorted([f".{name}.lock", name]), os.listdir(targets_dir)
    assert (targets_dir / name / "hf_eagle31_source.json").is_file()


HOLDER = """
import sys, time
from hf_eagle31.data import prepare
from hf_eagle31.cli import main

real = prepare.asdict

def slow_report(report):  # inside the output lock, before the dataset is renamed into place
    print("holding", flush=True)
    time.sleep(8)
    return real(report)

prepare.asdict = slow_report
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_prepare_data_runs_into_one_out_one_is_refused(tmp_path, capsys):
    """`prepare-data` into the same --out twice at once: the second gets the one-line lock refusal naming the first's
    pid and writes nothing; the first completes its dataset."""
    _, _, target_dir, _, _ = save_tiny_setup(tmp_path)
    with open(tmp_path / "c.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"messages": conv(f"w{i} w{i + 1}", "w3 w4")}) + "\n")
    argv = ["prepare-data", "--target", str(target_dir), "--source", str(tmp_path / "c.jsonl"), "--no-regenerate",
            "--out", str(tmp_path / "data")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", HOLDER, *argv[0:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=ROOT)  # fmt: skip
    try:
        assert first.stdout.readline().strip() == "holding", first.stderr.read()[-2000:]
        assert main(argv) == 2
        assert f"being written by another run (pid {first.pid})" in error_line(capsys)
        assert not (tmp_path / "data").exists()  # the second run wrote nothing; the first's set is not in place yet
    finally:
        first.communicate(timeout=300)
    assert first.returncode == 0
    assert len(load_prepared(str(tmp_path / "data"))) == 4 and not partial_path(tmp_path / "data").exists()


# ------------------------------------------------------------------------------------------------ read vs write (#33)


def cut(path):
    """Truncates a file to half its size (a copy interrupted, a disk that lost its tail)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_cached_target_is_a_read_error_naming_the_rebuild(tmp_path, capsys, monkeypatch):
    """It was reported as a *write* failure ("cannot write .safetensors weights (disk full, ...)") without a path:
    safetensors' "Error while deserializing" contains "serializ"."""
    from hf_eagle31.assets import SOURCES
    from hf_eagle31.targets import DEFAULT_TARGET, TARGETS

    monkeypatch.setenv("HF_EAGLE31_CACHE", str(tmp_path / "cache"))
    _, _, target_dir, _, _ = save_tiny_setup(tmp_path)
    copy = target_cache_dir(DEFAULT_TARGET)
    shutil.copytree(target_dir, copy)  # stands in for the dequantized copy: same files, our marker
    source = SOURCES[TARGETS[DEFAULT_TARGET]]
    (copy / "hf_eagle31_source.json").write_text(json.dumps({"source": source.name, "sha256": source.sha256}))
    cut(copy / "model.safetensors")
    assert main(["target", "--max-new-tokens", "1"]) == 2
    line = error_line(capsys)
    assert "cannot write" not in line and str(copy) in line and "cannot be read" in line
    assert f"hf-eagle31 target --rebuild {DEFAULT_TARGET}" in line
    cut(target_dir / "model.safetensors")  # a model folder of the user's: named, with its own fix
    assert main(["target", str(target_dir), "--max-new-tokens", "1"]) == 2
    line = error_line(capsys)
    assert f"the model in {target_dir} cannot be read" in line and "copy or save the model again" in line


def test_safetensors_read_and_write_failures_are_told_apart():
    from hf_eagle31.errors import one_line

    class SafetensorError(Exception):  # matched by name, as safetensors' own
        pass

    read = one_line(SafetensorError("Error while deserializing header: invalid header length"))
    write = one_line(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert read.startswith("unreadable .safetensors weights") and write.startswith("cannot write .safetensors")


def test_a_corrupt_dataset_and_checkpoint_are_read_errors_with_their_fix(tmp_path):
    rows().save_to_disk(str(tmp_path / "data"))
    cut(next((tmp_path / "data").glob("*.arrow")))
    with pytest.raises(InputError, match=r"prepared dataset in .*data cannot be read .*prepare-data .* --overwrite"):
        load_prepared(str(tmp_path / "data"))
    target = tiny_target()
    drafter = build_drafter(target.config, "eagle3", draft_vocab_size=64).load_target_embeddings(target)
    args = train_args(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=1)
    EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows()).train()
    cut(tmp_path / "run" / "checkpoint-2" / "model.safetensors")
    args = train_args(tmp_path / "run", max_steps=3, save_strategy="steps", save_steps=1)
    trainer = EagleTrainer(model=drafter, args=args, target=target, ttt_steps=1, train_dataset=rows())
    with pytest.raises(InputError, match=r"checkpoint's weights in .*checkpoint-2 cannot be read .*another checkpoint"):
        trainer.train(resume_from_checkpoint="latest")
    os.remove(tmp_path / "run" / "checkpoint-2" / "model.safetensors")  # complete, but its weights are gone
    with pytest.raises(InputError, match=r"checkpoint-2 has no weights"):
        trainer.train(resume_from_checkpoint="latest")


def test_an_answer_cache_that_is_a_file_is_named(tmp_path):
    from hf_eagle31.evaluation.teacher_forced import AnswerCache

    (tmp_path / "answers").write_text("")
    with pytest.raises(InputError, match="answers is a file, not a folder"):  # was "[Errno 17] File exists"
        AnswerCache(tmp_path / "answers")


def test_an_unknown_drafter_type_is_named_alike_by_loading_and_convert(tmp_path, capsys):
    """Loading said "convert it" while `convert` refused it (and named a --trust-remote-code it does not have)."""
    from hf_eagle31.loading import load_drafter_checkpoint

    make_drafter(tiny_target()).save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    (tmp_path / "d" / "config.json").write_text(json.dumps({**config, "model_type": "eagle4_drafter"}))
    with pytest.raises(InputError, match="`eagle4_drafter` drafter, which this hf-eagle31 release does not know") as e:
        load_drafter_checkpoint(tmp_path / "d")
    assert "upgrade hf-eagle31" in str(e.value) and "convert it" not in str(e.value)
    assert main(["convert", str(tmp_path / "d"), str(tmp_path / "out"), "--to", "hf-eagle31"]) == 2
    line = error_line(capsys)
    assert "does not know" in line and "upgrade hf-eagle31" in line and "--trust-remote-code" not in line
