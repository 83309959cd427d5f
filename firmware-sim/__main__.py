"""`python -m firmware_sim …` = `ecocluster sim …` (handy in subprocess tests)."""

from __future__ import annotations

import typer

from .cli import sim

if __name__ == "__main__":
    typer.run(sim)
