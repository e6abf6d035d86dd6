"""`hf-eagle31 eval`: suite-level tau pools the generator's SpeculationStats, multi-turn history, errors, CLI JSON."""

import functools
import json

import pytest

from hf_eagle31.cli import main
from hf_eagle31.data.suites import EvalPrompt, render
from hf_eagle31.evaluation import evaluate, format_table, pool_speculation_stats, read_prompt_file
from hf_eagle31.modeling import SpeculationStats

from conftest import TinyCliSetup, make_drafter, tiny_chat_tokenizer, tiny_target


def prompt(i, turns=1, suite="toy", length=8):
    words = [" ".join(f"w{(5 * i + 3 * t + j) % 30}" for j in range(length)) for t in range(turns)]
    return EvalPrompt(id=f"p{i}", suite=suite, source="toy", turns=words)


@pytest.fixture
def setup():
    tokenizer = tiny_chat_tokenizer()
    target = tiny_target(eos_token_id=None)
    return target, tokenizer


def test_tau_equals_generator_stats_for_one_prompt(setup):
    target, tokenizer = setup
    drafter = make_drafter(target, "eagle3", seed=4)
    results, runs = evaluate(
        target, tokenizer, {"d": drafter}, [prompt(0)], max_new_tokens=24, num_assistant_tokens=4, progress=False
    )
    stats = drafter.last_speculation_stats  # the generator's stats of the (only) measured run
    assert runs[-1]["run"].stats is stats
    (result,) = results
    assert result["tau"] == pytest.approx(stats.tau)
    assert result["acceptance_per_depth"] == pytest.approx(stats.acceptance_per_depth)
    assert result["cycles"] == stats.cycles and result["target_forwards"] == stats.target_forwards
    assert result["tau_ratio"] == pytest.approx(1.0) and result["tokens_per_s"] > 0


def test_pooled_statistics_over_prompts():
    a = SpeculationStats(target_forwards=4, draft_lengths=[3, 3, 2], accepted=[3, 0, 1])
    b = SpeculationStats(target_forwards=2, draft_lengths=[3], accepted=[2])
    pooled = pool_speculation_stats([a, b])
    # tau pools cycles, it is not the mean of per-prompt taus (which would be (7/3 + 3) / 2)
    assert pooled["tau"] == pytest.approx((4 + 1 + 2 + 3) / 4)
    assert pooled["acceptance_per_depth"] == pytest.approx([3 / 4, 2 / 4, 1 / 3])
    # conditional: P(accept d | accepted d-1): depth 2: 2 of the 3 that passed depth 1; depth 3: 1 of 2 (length >= 3)
    assert pooled["conditional_acceptance_per_depth"] == pytest.approx([3 / 4, 2 / 3, 1 / 2])
    assert pooled["target_forwards"] == 6 and pooled["cycles"] == 4


def test_side_by_side_multi_turn_and_suites(setup):
    target, tokenizer = setup
    drafters = {"e3": make_drafter(target, "eagle3", seed=5), "e31": make_drafter(target, "eagle3.1", seed=6)}
    prompts = [prompt(0, turns=2, suite="chat"), prompt(1, suite="chat"), prompt(2, suite="code")]
    results, runs = evaluate(
        target, tokenizer, drafters, prompts, max_new_tokens=10, num_assistant_tokens=3, progress=False
    )
    assert [(r["drafter"], r["suite"]) for r in results] == [
        ("e3", "chat"),
        ("e3", "code"),
        ("e31", "chat"),
        ("e31", "code"),
    ]
    for r in results:  # each suite's numbers pool exactly its own runs
        mine = [x["run"].stats for x in runs if x["drafter"] == r["drafter"] and x["suite"] == r["suite"]]
        assert r["tau"] == pytest.approx(sum(a + 1 for s in mine for a in s.accepted) / sum(s.cycles for s in mine))
        assert r["num_turns"] == (3 if r["suite"] == "chat" else 1)
        if r["drafter"] == "e3":
            assert r["tau_ratio"] == pytest.approx(1.0) and r["speed_ratio"] == pytest.approx(1.0)
    e31_chat = results[2]
    assert e31_chat["tau_ratio"] == pytest.approx(e31_chat["tau"] / results[0]["tau"])
    # turn 2 is conditioned on the target's own answer to turn 1 (greedy: the same for both drafters)
    turn1 = [x for x in runs if x["prompt"] == "p0" and x["turn"] == 1]
    turn2 = [x for x in runs if x["prompt"] == "p0" and x["turn"] == 2]
    assert turn1[0]["run"].new_tokens == turn1[1]["run"].new_tokens
    answer = tokenizer.decode(turn1[0]["run"].new_tokens, skip_special_tokens=True)
    expected = render(tokenizer, prompts[0], history=[answer])
    assert all(x["input_ids"] == expected for x in turn2) and len(expected) > len(turn1[0]["input_ids"])
    table = format_table(results)
    assert table.count("\n") == 1 + 4 and "| chat | e31 |" in table


def test_sampling_runs_and_reports_tau(setup):
    target, tokenizer = setup
    drafter = make_drafter(target, "eagle3.1", seed=7)
    results, _ = evaluate(
        target,
        tokenizer,
        {"d": drafter},
        [prompt(3)],
        max_new_tokens=12,
        num_assistant_tokens=3,
        do_sample=True,
        temperature=0.7,
        progress=False,
    )
    assert results[0]["tau"] >= 1 and results[0]["new_tokens"] == 12


def test_errors_prompt_too_long_and_mismatched_drafter(setup):
    target, tokenizer = setup
    drafter = make_drafter(target, "eagle3.1")
    long_prompt = prompt(0, length=600)  # the tiny target's context is 512
    with pytest.raises(ValueError, match="context of 512.*--max-new-tokens"):
        evaluate(target, tokenizer, {"d": drafter}, [long_prompt], max_new_tokens=8, progress=False)
    other = make_drafter(tiny_target(num_hidden_layers=6), "eagle3")
    with pytest.raises(ValueError, match="other: drafter/target mismatch"):
        evaluate(target, tokenizer, {"other": other}, [prompt(0)], max_new_tokens=8, progress=False)


def test_prompt_file_formats_and_errors(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": "w1 w2"})
        + "\n\n"
        + json.dumps({"question_id": 81, "turns": ["w3", "w4"]})
        + "\n"
        + json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "w9"},
                    {"role": "user", "content": "w5"},
                    {"role": "assistant", "content": "w6"},
                    {"role": "user", "content": "w7"},
                ]
            }
        )
        + "\n"
    )
    a, b, c = read_prompt_file(str(path))
    assert (a.id, a.turns, a.suite, a.template) == ("1", ["w1 w2"], "p", "chat")
    assert (b.id, b.turns) == ("81", ["w3", "w4"])
    assert (c.turns, c.system) == (["w5", "w7"], "w9")
    assert len(read_prompt_file(str(path), num_prompts=2)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "w1"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1 needs a non-empty 'prompt'"):
        read_prompt_file(str(bad))


def test_eval_cli_two_drafters_json(tmp_path, capsys):
    cli = TinyCliSetup(tmp_path, variants=("eagle3", "eagle3.1"))
    out = tmp_path / "eval.json"
    template = tmp_path / "chatml.jinja"
    template.write_text(tiny_chat_tokenizer().chat_template)
    rc = main(
        cli.argv(
            "eval",
            num_prompts=2,
            max_new_tokens=10,
            num_assistant_tokens=3,
            chat_template=str(template),
            system_prompt="w1",
            json=str(out),
        )
    )
    assert rc == 0
    results = json.loads(out.read_text())["results"]
    assert [r["drafter"] for r in results] == [str(d) for d in cli.drafter_dirs]
    for r in results:
        assert r["suite"] == "prompts" and isinstance(r["tau"], float) and isinstance(r["tokens_per_s"], float)
        assert len(r["acceptance_per_depth"]) == 3 and r["num_prompts"] == 2
    printed = capsys.readouterr().out
    assert "| suite | drafter | tau | tau × | tok/s | speed × | acc@1 | acc@2 | acc@3 |" in printed


def test_draft_length_sweep(setup):
    target, tokenizer = setup
    drafter = make_drafter(target, "eagle3.1", seed=10)
    results, runs = evaluate(
        target, tokenizer, {"d": drafter}, [prompt(4)], max_new_tokens=12, num_assistant_tokens=[1, 3], progress=False
    )
    assert [r["num_assistant_tokens"] for r in results] == [1, 3]
    assert [len(r["acceptance_per_depth"]) for r in results] == [1, 3]
    assert 1 <= results[0]["tau"] <= 2 and 1 <= results[1]["tau"] <= 4
    assert all(max(x["run"].stats.draft_lengths) == x["num_assistant_tokens"] for x in runs)
    assert "K=1" in format_table(results) and "K=3" in format_table(results)


def test_drift_acceptance_is_speculation_stats_acceptance():
    """drift's per-prompt cumulative flags, read as one cycle of `depth` drafts each: the same definitions."""
    from hf_eagle31.evaluation.drift import _as_speculation_stats

    rows = [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    stats = _as_speculation_stats(rows)
    assert stats.acceptance_per_depth == [sum(col) / len(rows) for col in zip(*rows)]  # mean over prompts
    assert stats.conditional_acceptance_per_depth == pytest.approx([3 / 4, 2 / 3, 1 / 2, 1.0])
    assert SpeculationStats.pooled([stats, SpeculationStats()]).acceptance_per_depth == stats.acceptance_per_depth


def test_evaluate_compares_drafting_policies(setup):
    """`policies` adds a `<drafter>:<policy>` row per drafter; every policy's output equals the shipped run's
    (greedy); the per-policy columns count what each policy drafted and wasted."""
    import torch

    from hf_eagle31.evaluation import drafting_policy

    target, tokenizer = setup
    drafter = make_drafter(target, "eagle3.1", seed=8)
    with torch.no_grad():
        drafter.lm_head.weight.mul_(0.0)  # a uniform drafter: always unsure
    policies = {
        name: drafting_policy(name, confidence_threshold=0.5, copy_tokens=4)
        for name in ("constant", "confidence", "confidence+copy")
    }
    prompts = [prompt(0, length=12), prompt(1, length=12)]
    results, runs = evaluate(
        target,
        tokenizer,
        {"d": drafter},
        prompts,
        max_new_tokens=12,
        num_assistant_tokens=3,
        progress=False,
        policies=policies,
    )
    by_row = {r["drafter"]: r for r in results}
    assert list(by_row) == ["d", "d:constant", "d:confidence", "d:confidence+copy"]
    assert by_row["d"]["policy"] is None and by_row["d:confidence"]["policy"] == "confidence"
    for p in ("p0", "p1"):  # greedy: every policy generates the same tokens
        outputs = {x["drafter"]: x["run"].new_tokens for x in runs if x["prompt"] == p}
        assert len(set(map(tuple, outputs.values()))) == 1
    assert by_row["d:constant"]["drafted_per_cycle"] > 2.5  # K = 3, less only where max_new_tokens cuts a chain
    assert by_row["d:confidence"]["drafted_per_cycle"] == pytest.approx(1.0)  # unsure: one token a cycle
    assert by_row["d:constant"]["wasted_draft_tokens"] > by_row["d:confidence"]["wasted_draft_tokens"]
    mine = [x["run"].stats for x in runs if x["drafter"] == "d:constant"]
    assert by_row["d:constant"]["wasted_draft_tokens"] == sum(sum(s.draft_lengths) - sum(s.accepted) for s in mine)
    assert by_row["d:constant"]["copied_cycles"] == 0
    table = format_table(results)
    assert "| toy | d:confidence |" in table and "drafted/cycle | wasted |" in table
    with pytest.raises(ValueError, match="clashes"):
        evaluate(target, tokenizer, {"d": drafter}, prompts, progress=False, policies={"d": {}})


def test_evaluate_runs_every_drafter_under_one_policy(setup):
    """`drafting=` replaces each drafter's saved generation config: a drafter saved with confidence-bounded drafting
    drafts K tokens a cycle under the constant policy, and one saved with constant K drafts one under confidence."""
    import torch

    from hf_eagle31.evaluation import drafting_policy

    target, tokenizer = setup
    unsure = make_drafter(target, "eagle3.1", seed=8)
    with torch.no_grad():
        unsure.lm_head.weight.mul_(0.0)  # a uniform drafter: always unsure
    unsure.generation_config.assistant_confidence_threshold = 0.5
    prompts = [prompt(0, length=12)]
    run = functools.partial(
        evaluate, target, tokenizer, {"d": unsure}, prompts, max_new_tokens=12, num_assistant_tokens=3, progress=False
    )
    saved, _ = run()
    constant, _ = run(drafting=drafting_policy("constant"))
    assert saved[0]["drafted_per_cycle"] == pytest.approx(1.0)
    assert constant[0]["drafter"] == "d" and constant[0]["drafted_per_cycle"] > 2.5
    unsure.generation_config.assistant_confidence_threshold = 0.0
    confidence, _ = run(drafting=drafting_policy("confidence", confidence_threshold=0.5))
    assert confidence[0]["drafted_per_cycle"] == pytest.approx(1.0)
