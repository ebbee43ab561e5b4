"""A seeded, deterministic simulator of stromledger consensus under faults, and the checker of its runs.

    from stromledger.sim import SimConfig, run_checked
    outcome = run_checked(SimConfig(seed=7, validators=4, faults="all"))
    assert not outcome.violations

Pure: no threads, no trio, no clock. See docs/consensus.md.
"""

from .batch import Outcome, Summary, run_checked, run_seeds
from .checker import KINDS, Violation, check
from .runner import Decision, SimNode, SimResult, Simulation, simulate
from .scenario import FAULT_KINDS, SIM_CONSENSUS, FaultPlan, SimConfig, draw_plan

__all__ = ["FAULT_KINDS", "KINDS", "SIM_CONSENSUS", "Decision", "FaultPlan", "Outcome", "SimConfig", "SimNode",
           "SimResult", "Simulation", "Summary", "Violation", "check", "draw_plan", "run_checked", "run_seeds",
           "simulate"]
