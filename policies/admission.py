"""Admission rules applied to requests as they arrive.

`max_tokens` is the queueing paper's n_max (Yang, Jiao & Xu 2024, §III): every output is cut at the
limit, so the service time is `c + a·min(n, n_max)`; clipping a small tail of long outputs shortens
everyone's queueing delay. How many outputs were cut is reported in `summary.counts.clipped`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class AdmissionConfig(BaseModel):
    """Scenario section `admission`: rules a request passes before it is routed."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        default=None, ge=1, description="cut every output at this many tokens (n_max); none = no limit"
    )

    def clip(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outputs after clipping, mask of the requests that were cut)."""
        out = np.asarray(output, dtype=np.int64)
        if self.max_tokens is None:
            return out, np.zeros(len(out), dtype=bool)
        cut = out > self.max_tokens
        return np.minimum(out, self.max_tokens), cut
