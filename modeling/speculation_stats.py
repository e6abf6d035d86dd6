# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""What one `generate` call with a drafter did: `SpeculationStats`, the one definition of tau and acceptance.

This file travels with every Hub checkpoint (remote code): it imports the standard library only.
"""

from dataclasses import dataclass, field


@dataclass
class SpeculationStats:
    """
    Statistics of one `generate` call, left on the drafter as `drafter.last_speculation_stats`.

    target_forwards: every target forward of the call (the prefill included).
    draft_lengths / accepted: per speculation cycle (a target forward that verified >= 1 candidate), the number of
        candidates proposed and accepted.
    tau: mean tokens per verifying target forward, the bonus token counted: mean(accepted + 1).
    acceptance_per_depth[d-1]: share of cycles that drafted >= d tokens in which the d-th was accepted.
    conditional_acceptance_per_depth[d-1]: the same among cycles that also accepted the first d-1 drafts.

    `policy` says which drafting policy ran ("chain" or "tree"); the stats are replaced at the start of every
    speculating call, so they never describe an earlier call.

    These are the one definition of tau and acceptance in hf-eagle31: evaluation, bench and drift pool their cycles
    into one `SpeculationStats` (`SpeculationStats.pooled`) and read them here. `tau_from_forwards` gives tau from a
    forward log, for drafting methods that keep no stats (HF prompt lookup).
    """

    target_forwards: int = 0
    draft_lengths: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    drafter_forwards: int = 0
    drafter_time_s: float = 0.0
    copied_cycles: int = 0  # cycles whose candidates continued an n-gram match of the context
    # The drafting policy that ran ("chain", "tree"), or None: a `generate` call that received the drafter but did not
    # speculate (e.g. beam search, which transformers runs without the assistant) leaves fresh stats with policy None.
    policy: str | None = None
    # With a batch (B > 1 rows): each row's own cycles; the fields above then pool every row's cycles.
    rows: list | None = None

    @property
    def cycles(self) -> int:
        return len(self.accepted)

    @property
    def tau(self) -> float | None:
        if not self.accepted:
            return None
        return sum(a + 1 for a in self.accepted) / len(self.accepted)

    @property
    def drafted_per_cycle(self) -> float | None:
        """Mean candidates proposed per cycle (what a confidence bound or a copy changes)."""
        return sum(self.draft_lengths) / len(self.draft_lengths) if self.draft_lengths else None

    @property
    def wasted_draft_tokens(self) -> int:
        """Candidates proposed and then rejected: each cost a drafter step (or a copy) and a verified position."""
        return sum(self.draft_lengths) - sum(self.accepted)

    @property
    def acceptance_per_depth(self) -> list[float | None]:
        depth = max(self.draft_lengths, default=0)
        rates = []
        for d in range(1, depth + 1):
            drafted = sum(1 for k in self.draft_lengths if k >= d)
            hits = sum(1 for k, a in zip(self.draft_lengths, self.accepted) if k >= d and a >= d)
            rates.append(hits / drafted if drafted else None)
        return rates

    @property
    def conditional_acceptance_per_depth(self) -> list[float | None]:
        rates = []  # P(depth d accepted | depth d - 1 accepted)
        for d in range(1, max(self.draft_lengths, default=0) + 1):
            reached = [a for k, a in zip(self.draft_lengths, self.accepted) if k >= d and a >= d - 1]
            rates.append(sum(1 for a in reached if a >= d) / len(reached) if reached else None)
        return rates

    @classmethod
    def pooled(cls, stats_list: "list[SpeculationStats]") -> "SpeculationStats":
        """One `SpeculationStats` over the cycles of several (e.g. one per prompt), in order."""
        return cls(
            target_forwards=sum(s.target_forwards for s in stats_list),
            draft_lengths=[k for s in stats_list for k in s.draft_lengths],
            accepted=[a for s in stats_list for a in s.accepted],
            drafter_forwards=sum(s.drafter_forwards for s in stats_list),
            drafter_time_s=sum(s.drafter_time_s for s in stats_list),
            copied_cycles=sum(s.copied_cycles for s in stats_list),
            policy=",".join(sorted({s.policy for s in stats_list if s.policy})) or None,
        )

    def to_dict(self) -> dict:
        return {
            "target_forwards": self.target_forwards,
            "cycles": self.cycles,
            "tau": self.tau,
            "acceptance_per_depth": self.acceptance_per_depth,
            "draft_lengths": list(self.draft_lengths),
            "accepted": list(self.accepted),
            "drafter_forwards": self.drafter_forwards,
            "drafter_time_s": self.drafter_time_s,
            "copied_cycles": self.copied_cycles,
            "policy": self.policy,
            "drafted_per_cycle": self.drafted_per_cycle,
            "wasted_draft_tokens": self.wasted_draft_tokens,
        }


def tau_from_forwards(candidates_per_forward: list[int], new_tokens: int) -> float | None:
    """
    Mean tokens per verifying target forward (the bonus counted), from a generate call's forward log. Forwards that
    verified no candidate produced one token each; the others produced the rest. Equals `SpeculationStats.tau` for
    the drafter, and gives the same statistic for HF prompt lookup, which keeps no stats of its own.
    """
    cycles = sum(1 for c in candidates_per_forward if c > 0)
    if cycles == 0:
        return None
    plain = len(candidates_per_forward) - cycles
    return (new_tokens - plain) / cycles
