"""`hf-eagle31 demo` (the README's main job) end to end on a saved tiny target and drafter."""

import re

from transformers import GenerationConfig

from hf_eagle31.cli import main
from hf_eagle31.commands.demo import describe_policy

from conftest import save_tiny_setup


def test_demo_runs_and_reports(tmp_path, capsys):
    _, _, target_dir, (drafter_dir,), _ = save_tiny_setup(tmp_path)
    argv = ["demo", "--target", str(target_dir), "--drafter", str(drafter_dir), "--max-new-tokens", "12"]
    rc = main(argv + ["--prompt", "w1 w2 w3", "--prompt", "w4 w5", "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "drafting policy: chain of at most K = " in out
    assert "tokens per target forward over 2 prompt(s)" in out
    per_prompt = re.search(
        r"speed-up x([0-9.]+) \(median over 2 prompt\(s\) of 1 alternated runs each; per prompt: "
        r"x([0-9.]+), x([0-9.]+)\)",
        out,
    )
    assert per_prompt, out
    overall, first, second = map(float, per_prompt.groups())
    assert abs(overall - (first + second) / 2) < 0.011  # the median of two
    assert "answers identical to plain greedy: yes" in out  # fp32 target: exact


def test_describe_policy_names_what_runs():
    chain = GenerationConfig(num_assistant_tokens=3, assistant_confidence_threshold=0.5, prompt_lookup_num_tokens=8)
    assert (
        describe_policy(chain)
        == "chain of at most K = 3, stopped below confidence 0.5 + context copy of up to 8 tokens"
    )
    assert describe_policy(GenerationConfig(num_assistant_tokens=6, assistant_confidence_threshold=0.0), 2) == (
        "chain of at most K = 2"
    )
    tree = GenerationConfig(prompt_lookup_num_tokens=8)
    tree.draft_tree, tree.tree_depth, tree.tree_topk, tree.tree_total_tokens = True, 5, 4, 16
    assert describe_policy(tree) == (
        "dynamic draft tree (depth 5, top-4 expansion, 16 nodes verified per cycle) + context copy of up to 8 tokens"
    )
    tree.tree_min_probability = 0.1
    assert "16 nodes verified per cycle, a further depth only while its best node is >= 0.1 likely)" in (
        describe_policy(tree)
    )
