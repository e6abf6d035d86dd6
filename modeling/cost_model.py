# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What a drafting cycle costs on this machine, learned online from the timings the generation loop already takes.

No start-up benchmark: every cycle times its target forward and its drafter forwards anyway, and hands them here.

    verify_time(n, c) = f(n) + beta * c          seconds of one target forward that verifies n new positions
                                                 over a cache of c positions (n = draft nodes + 1: the root)
    draft_time(w)     = g(w)                     seconds of one drafter forward over w rows (a tree depth fed
                                                 w frontier nodes, or the feed of the w newly verified positions)

f and g are monotone piecewise-linear curves over token-count buckets {1}, {2}, {3-4}, {5-8}, ..., {129-256}
(bucket b holds n with ceil(log2 n) = b). Why buckets and not a line: verification is not linear in n, and its
shape is the machine's (fp32 on a CPU: 4 tokens ~1.6x a 1-token forward, 12 tokens ~2.2x; bf16 ~1.2x at 12; a GPU
~1x up to dozens), so the model must learn the curve, not a slope.

Per bucket (all with exponential forgetting: an observation of that bucket `h` observations old weighs
`forget ** h`, so ~14 observations ago counts half at the default 0.95):
  weight w_b, mean token count n_b, mean context c_b, mean time t_b, and the co-moments S_cc, S_ct of
  (context, time). The context slope is the pooled within-bucket regression
      beta = max(0, sum_b S_ct[b] / (sum_b S_cc[b] + ridge))
  (the bucket fixes n, so what remains of the time's variation within a bucket is the context's); each bucket's
  point is then (n_b, t_b - beta * c_b), and the points are made non-decreasing in n by weighted pool-adjacent-
  violators (isotonic regression: a longer verification never costs less).
Robustness (a noisy machine): the time fed to a bucket is the lower median of its last three raw timings (each
  brought to the current context with beta), so an isolated stall (a GC pause, a scheduler hiccup, the process's
  first slow forward) never enters the estimate; the first three observations set the mean outright.

Prediction for n tokens (context part added afterwards):
  between two observed points   linear interpolation;
  below the first observed x_0  y_0 * (n / x_0) ** prior_growth;
  above the last observed x_L   y_L * (n / x_L) ** prior_growth;
  nothing observed yet          prior_verify_s * n ** prior_growth (only the first cycle of a process sees this).
`prior_growth` = 0.5 is conservative: steeper than every curve measured (fp32 CPU ~0.32, bf16 ~0.07, GPU ~0) and
below the linear bound that concavity implies, so an unmeasured size looks expensive and the planner sticks to what
it knows, except on exploring cycles.

Exploration (explicit, or a size never picked is never measured): `exploring(max_tokens)` is True on every
`explore_every`-th call while some bucket up to `max_tokens` is weak (fewer than 2 observations, or none in the last
`stale_after` verify observations); on such a cycle the planner prices weak buckets with `optimistic=True`, the
lowest cost monotonicity and concavity allow:
  inside the observed range      the nearest strong point to the left (flat: it cannot cost less);
  below the first strong point   y_0 * n / x_0 (linear: the cost per token only falls with n);
  above the last strong point    y_L (flat).
If a size still loses under its lowest possible cost it is never worth measuring; if it wins, it is verified, timed,
and from then on priced by its measurement. A weak size the planner would pick is tried within `explore_every`
cycles; exploring costs at most one cycle in `explore_every` while anything is unmeasured, and none once all is.

A process-wide registry (`CostModel.for_key(CostModel.key_of(target))`) keyed by the target's name/path and class,
device type and dtype lets a second `generate` call start from what the first one learned.

Units: seconds, token counts, context lengths in tokens. Timings must include a device sync (a GPU forward is
asynchronous: time after the result is read). Planning runs on the host over tens of sizes, where Python floats cost
less than torch ops' dispatch (benchmarks/planner_cost.py). This file travels with every Hub checkpoint (remote
code): it imports the standard library only.
"""

import math


class _Curve:
    """The bucketed, forgetting, median-filtered curve t(n, c) = f(n) + beta * c behind `CostModel` (one per kind)."""

    def __init__(self, max_tokens, forget, prior_s, prior_growth, stale_after, ridge=100.0):
        self.buckets = _bucket(max_tokens) + 1
        self.max_tokens, self.forget, self.prior_s, self.prior_growth = max_tokens, forget, prior_s, prior_growth
        self.stale_after, self.ridge = stale_after, ridge
        zeros = [0.0] * self.buckets
        self.weight, self.mean_n, self.mean_c, self.mean_t = list(zeros), list(zeros), list(zeros), list(zeros)
        self.s_cc, self.s_ct = list(zeros), list(zeros)
        self.count = [0] * self.buckets
        self.last_seen = [-1] * self.buckets
        self.recent = [[] for _ in range(self.buckets)]  # the last 3 raw (context, seconds) of each bucket
        self.observations = 0
        self.beta = 0.0
        self._cache = {}

    def observe(self, n, c, t):
        n, c, t = int(n), float(c), float(t)
        if not (1 <= n <= self.max_tokens) or not math.isfinite(t) or t <= 0:
            return  # a prefill (n beyond the curve's range) or a broken timer: nothing the planner prices
        b = _bucket(n)
        recent = self.recent[b]
        recent.append((c, t))
        del recent[:-3]
        filtered = sorted(ti - self.beta * (ci - c) for ci, ti in recent)[(len(recent) - 1) // 2]
        g = self.forget
        w_old = self.weight[b] * g
        w = w_old + 1.0
        dn, dc, dt = n - self.mean_n[b], c - self.mean_c[b], filtered - self.mean_t[b]
        self.mean_n[b] += dn / w
        self.mean_c[b] += dc / w
        self.mean_t[b] = filtered if self.count[b] < 3 else self.mean_t[b] + dt / w
        # exponentially weighted co-moments (West's update): S' = g S + (w_old / w) dx dy
        self.s_cc[b] = g * self.s_cc[b] + (w_old / w) * dc * dc
        self.s_ct[b] = g * self.s_ct[b] + (w_old / w) * dc * dt
        self.weight[b] = w
        self.count[b] += 1
        self.last_seen[b] = self.observations
        self.observations += 1
        self.beta = max(0.0, sum(self.s_ct) / (sum(self.s_cc) + self.ridge))
        self._cache.clear()

    def strong(self, b):
        return self.count[b] >= 2 and self.observations - self.last_seen[b] <= self.stale_after

    def _points(self):
        """[(x, y, strong)] of the observed buckets: y at context 0, non-decreasing in x (weighted PAV)."""
        blocks = []  # [sum w*y, sum w, first bucket, last bucket]
        for b in range(self.buckets):
            if self.count[b]:
                w = self.weight[b]
                blocks.append([w * max(self.mean_t[b] - self.beta * self.mean_c[b], 1e-9), w, b, b])
                while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                    last = blocks.pop()
                    blocks[-1][0] += last[0]
                    blocks[-1][1] += last[1]
                    blocks[-1][3] = last[3]
        points = []
        for total, w, first, last in blocks:
            for b in range(first, last + 1):
                if self.count[b]:
                    points.append((self.mean_n[b], total / w, self.strong(b)))
        return points

    def values(self, count, optimistic=False):
        """[f(1), ..., f(n)] (context 0) for some n >= count, cached until the next observation."""
        cached = self._cache.get(optimistic)
        if cached is not None and len(cached) >= count:
            return cached
        count = max(count, 64)  # what a planner asks next time, computed once
        points = self._points()
        a = self.prior_growth
        if not points:
            out = [self.prior_s * n**a for n in range(1, count + 1)]
        else:
            out = []
            j, last = 0, len(points) - 1
            (x_first, y_first, _), (x_last, y_last, _) = points[0], points[-1]
            for n in range(1, count + 1):
                while j <= last and points[j][0] < n:
                    j += 1
                if j == 0:
                    out.append(y_first * (n / x_first) ** a)
                elif j > last:
                    out.append(y_last * (n / x_last) ** a)
                else:
                    (x0, y0, _), (x1, y1, _) = points[j - 1], points[j]
                    out.append(y0 + (y1 - y0) * (n - x0) / (x1 - x0))
            strong = [(x, y) for x, y, is_strong in points if is_strong]
            if optimistic and strong:
                weak = [not self.strong(b) for b in range(self.buckets)]
                j = -1  # the last strong point with x <= n
                for n in range(1, count + 1):
                    while j + 1 < len(strong) and strong[j + 1][0] <= n:
                        j += 1
                    if n <= self.max_tokens and weak[_bucket(n)]:
                        bound = strong[j][1] if j >= 0 else strong[0][1] * n / strong[0][0]
                        out[n - 1] = min(out[n - 1], bound)
        self._cache[optimistic] = out
        return out

    def summary(self, seconds_key="seconds"):
        rows = {}
        for b in range(self.buckets):
            if self.count[b]:
                low, high = (1, 1) if b == 0 else (2 ** (b - 1) + 1, 2**b)
                rows[str(low) if low == high else f"{low}-{high}"] = {
                    "mean_tokens": self.mean_n[b],
                    "mean_context": self.mean_c[b],
                    seconds_key: self.mean_t[b],
                    "count": self.count[b],
                }
        return rows


def _bucket(n: int) -> int:
    """Bucket of a token count: 1 -> 0, 2 -> 1, 3-4 -> 2, 5-8 -> 3, ... (ceil(log2 n))."""
    return (int(n) - 1).bit_length()


class CostModel:
    """
    Measured costs of a drafting cycle (see the module docstring for the model and the exploration rule).

    observe_verify(num_tokens, context_length, seconds)   a target forward over num_tokens new positions
    observe_draft(width, seconds)                         a drafter forward over `width` rows (a depth, or the feed)
    verify_time(num_tokens, context_length) -> seconds    draft_time(width) -> seconds
    verify_times(count, context_length) -> [verify_time(1), ..., verify_time(count)]
    exploring(max_tokens) -> bool                         whether this cycle prices weak sizes optimistically
    """

    registry: dict = {}  # process-wide: key -> CostModel (`for_key`)

    def __init__(
        self,
        *,
        max_tokens: int = 256,
        forget: float = 0.95,
        prior_growth: float = 0.5,
        prior_verify_s: float = 0.02,
        prior_draft_s: float = 0.004,
        explore_every: int = 8,
        stale_after: int = 500,
    ):
        if max_tokens < 1 or not 0.0 < forget < 1.0 or explore_every < 1 or prior_growth < 0:
            raise ValueError(
                f"CostModel(max_tokens={max_tokens}, forget={forget}, explore_every={explore_every}, "
                f"prior_growth={prior_growth}): use max_tokens >= 1, 0 < forget < 1, explore_every >= 1, growth >= 0."
            )
        self.max_tokens, self.explore_every = max_tokens, explore_every
        self.verify = _Curve(max_tokens, forget, prior_verify_s, prior_growth, stale_after)
        self.draft = _Curve(max_tokens, forget, prior_draft_s, prior_growth, stale_after)
        self.cycles = 0

    # ------------------------------------------------------------------ registry

    @staticmethod
    def key_of(target) -> tuple:
        """(name or path, class, device type, dtype) of a target model: what its costs depend on."""
        config = getattr(target, "config", None)
        name = getattr(config, "_name_or_path", None) or getattr(config, "model_type", None) or ""
        device = getattr(target, "device", None)
        return (str(name), type(target).__name__, getattr(device, "type", str(device)), str(getattr(target, "dtype", "")))

    @classmethod
    def for_key(cls, key, **settings) -> "CostModel":
        """The process's cost model for `key` (created with `settings` on first use)."""
        model = cls.registry.get(key)
        if model is None:
            model = cls.registry[key] = cls(**settings)
        return model

    # ------------------------------------------------------------------ learning

    def observe_verify(self, num_tokens: int, context_length: int, seconds: float) -> None:
        """One target forward verifying `num_tokens` new positions after `context_length` cached ones took
        `seconds` (including a device sync). Counts above `max_tokens` (a prefill) are ignored."""
        self.verify.observe(num_tokens, context_length, seconds)

    def observe_draft(self, width: int, seconds: float, context_length: int = 0) -> None:
        """One drafter forward over `width` rows took `seconds` (a tree depth, a chain step, or the feed)."""
        self.draft.observe(width, context_length, seconds)

    # ------------------------------------------------------------------ predicting

    def verify_time(self, num_tokens: int, context_length: int = 0, optimistic: bool = False) -> float:
        n = min(max(int(num_tokens), 1), self.max_tokens)
        return self.verify.values(n, optimistic)[n - 1] + self.verify.beta * context_length

    def verify_times(self, count: int, context_length: int = 0, optimistic: bool = False) -> list:
        """[verify_time(1, c), ..., verify_time(count, c)] (sizes above `max_tokens` priced as `max_tokens`)."""
        values = self.verify.values(min(count, self.max_tokens), optimistic)[: min(count, self.max_tokens)]
        if count > len(values):
            values = values + [values[-1]] * (count - len(values))
        extra = self.verify.beta * context_length
        return [v + extra for v in values] if extra else values

    def draft_time(self, width: int, context_length: int = 0) -> float:
        n = min(max(int(width), 1), self.max_tokens)
        return self.draft.values(n)[n - 1] + self.draft.beta * context_length

    def measured(self, num_tokens: int) -> bool:
        """Whether verifications of this size (its bucket) have been timed at least twice, recently."""
        return self.verify.strong(_bucket(min(max(int(num_tokens), 1), self.max_tokens)))

    def exploring(self, max_tokens: int) -> bool:
        """Call once per cycle: True on every `explore_every`-th cycle while a size up to `max_tokens` is weak."""
        self.cycles += 1
        if self.cycles % self.explore_every:
            return False
        top = _bucket(min(max_tokens, self.max_tokens))
        return not all(self.verify.strong(b) for b in range(top + 1))

    def summary(self) -> dict:
        """What `bench --profile` prints: per bucket mean seconds and count, and the context slope."""
        return {
            "verify": self.verify.summary(),
            "draft": self.draft.summary(),
            "verify_seconds_per_context_token": self.verify.beta,
            "verify_observations": self.verify.observations,
            "draft_observations": self.draft.observations,
        }
