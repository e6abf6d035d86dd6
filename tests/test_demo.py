"""`hf-eagle31 demo` (the README's main job) end to end on a saved tiny target and drafter."""

from hf_eagle31.cli import main

from conftest import save_tiny_setup


def test_demo_runs_and_reports(tmp_path, capsys):
    _, _, target_dir, (drafter_dir,), _ = save_tiny_setup(tmp_path)
    rc = main(
        [
            "demo",
            "--target",
            str(target_dir),
            "--drafter",
            str(drafter_dir),
            "--prompt",
            "w1 w2 w3",
            "--max-new-tokens",
            "12",
            "--repeats",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "tokens per target forward" in out and "speed-up x" in out
    assert "answer identical to plain greedy: yes" in out  # fp32 target: exact
