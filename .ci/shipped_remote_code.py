"""Release check: the shipped drafters' remote code, loaded with `trust_remote_code=True` in a process where
`hf_eagle31` cannot be imported (a Hub user's setup), drafts inside `generate` on the real default target and returns
exactly plain greedy decoding. Run it under each transformers release of the tested range:

    python .ci/shipped_remote_code.py [--max-new-tokens 48]

The parent (with hf-eagle31 installed) materialises the default target from its pinned wheel; the child sees only
transformers, torch and the drafter folders.
"""

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Explain in a few sentences why the sky is blue.",
    "Write a Python function that returns the n-th Fibonacci number.",
    "List three tips for a good night's sleep.",
]

CHILD = textwrap.dedent(
    """
    import json, sys, torch, transformers
    sys.modules["hf_eagle31"] = None  # any `import hf_eagle31` now fails
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging
    logging.set_verbosity_error()
    target_dir, max_new, prompts, drafters = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
    target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    for path in drafters:
        drafter = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
        assert type(drafter).__module__.startswith("transformers_modules"), type(drafter).__module__
        for prompt in prompts:
            inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   return_tensors="pt", return_dict=True)
            plain = target.generate(**inputs, max_new_tokens=max_new, do_sample=False)
            assisted = target.generate(**inputs, max_new_tokens=max_new, do_sample=False, assistant_model=drafter)
            stats = drafter.last_speculation_stats
            print(json.dumps({"transformers": transformers.__version__, "drafter": path.rsplit("/", 1)[-1],
                              "prompt": prompt[:32], "identical": bool(torch.equal(plain, assisted)),
                              "tau": round(stats.tau or 0, 2)}), flush=True)
    """
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    from hf_eagle31.loading import SHIPPED_DRAFTERS
    from hf_eagle31.targets import DEFAULT_TARGET, load_target, target_cache_dir

    load_target(DEFAULT_TARGET)  # materialises the cached HF copy of the pinned wheel's target
    drafters = sorted(str(path.parent) for path in SHIPPED_DRAFTERS.glob("*/config.json"))
    command = [
        sys.executable,
        "-c",
        CHILD,
        str(target_cache_dir(DEFAULT_TARGET)),
        str(args.max_new_tokens),
        json.dumps(PROMPTS),
        *drafters,
    ]
    child = subprocess.run(command, capture_output=True, text=True, cwd="/")
    rows = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        print(row)
    if child.returncode or len(rows) != len(drafters) * len(PROMPTS) or not all(r["identical"] for r in rows):
        print(child.stderr[-3000:])
        return 1
    print(f"all {len(rows)} generations identical to plain greedy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
