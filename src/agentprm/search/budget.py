"""`Budget`: a search budget as a value ("16" best-of-16, "4x4" beam N=4 M=4, "1" greedy), parsed, printed
and ordered in one place."""

from __future__ import annotations

from dataclasses import dataclass

from agentprm.errors import UserError

STRATEGIES = ("greedy", "bon", "beam")


@dataclass(frozen=True, order=True)
class Budget:
    """N samples (best-of-n), or N beams of M expansions (beam: `m` >= 1); `m == 0` means not a beam.
    Ordered by (n, m), so 2x2 < 4x4 < 8x8 and 8 < 16."""

    n: int
    m: int = 0

    @property
    def is_beam(self) -> bool:
        return self.m > 0

    def __str__(self) -> str:
        return f"{self.n}x{self.m}" if self.is_beam else str(self.n)

    @classmethod
    def parse(cls, strategy: str, text: str | int) -> Budget:
        """greedy: always 1; best-of-n "16"; beam "4x4" or "4" (= 4x4). Bad text is a one-line UserError."""
        if strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        raw = str(text).lower().strip()
        try:
            if strategy == "beam":
                n, _, m = raw.partition("x")
                b = cls(int(n), int(m or n))
            else:
                b = cls(int(raw))
        except ValueError:
            raise UserError(f"bad --budget {text!r}: give N for bon (e.g. 16) or NxM for beam (e.g. 4x4)") from None
        if b.n < 1 or (b.is_beam and b.m < 1):
            raise UserError(f"bad --budget {text!r}: budgets are at least 1")
        return cls(1) if strategy == "greedy" else b
